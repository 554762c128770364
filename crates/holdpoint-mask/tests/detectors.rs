//! Text detectors: each built-in rule finds its credential shape in realistic text, masks only
//! the secret part, leaves look-alikes and plain text alone, and masking is idempotent.

use holdpoint_mask::{CustomDetector, MaskConfig, MaskSummary, PLACEHOLDER, TextMasker};

fn masker() -> TextMasker {
    TextMasker::new(&MaskConfig::default()).unwrap()
}

/// Masks `text`, asserts the secret is gone, the placeholder present, the rule counted and a
/// second pass changes nothing. Returns the masked text.
fn assert_masked(text: &str, secret: &str, rule: &str) -> String {
    let m = masker();
    let mut s = MaskSummary::new();
    let out = m.mask(text, &mut s).into_owned();
    assert!(!out.contains(secret), "{rule}: secret survived in {out:?}");
    assert!(
        out.contains(PLACEHOLDER),
        "{rule}: no placeholder in {out:?}"
    );
    assert!(
        s.count(&format!("text.{rule}")) >= 1,
        "{rule} not counted: {s:?}"
    );
    assert!(
        !m.is_flagged(&out),
        "{rule}: masked text still flagged: {out:?}"
    );
    let mut s2 = MaskSummary::new();
    assert_eq!(m.mask(&out, &mut s2), out, "{rule}: not idempotent");
    assert!(s2.is_empty());
    out
}

fn assert_clean(text: &str) {
    let m = masker();
    let mut s = MaskSummary::new();
    assert_eq!(m.mask(text, &mut s), text, "false positive");
    assert!(s.is_empty(), "false positive counted: {s:?}");
}

#[test]
fn aws_access_key_id_in_an_env_dump() {
    let key = "AKIAIOSFODNN7EXAMPL3";
    let out = assert_masked(
        &format!("AWS_ACCESS_KEY_ID={key}\nREGION=eu-west-1"),
        key,
        "aws-access-key-id",
    );
    assert!(out.contains("REGION=eu-west-1"));
}

#[test]
fn aws_secret_access_key_assignment() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    assert_masked(
        &format!("aws_secret_access_key = {secret}"),
        secret,
        "aws-secret-access-key",
    );
}

#[test]
fn github_tokens_classic_and_fine_grained() {
    let classic = format!("ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    let out = assert_masked(
        &format!("git clone https://x-access-token@github.com # {classic}"),
        &classic,
        "github-token",
    );
    assert!(out.starts_with("git clone"));
    let fine = format!("github_pat_{}", "A1b2C3d4E5".repeat(8) + "zz");
    assert_masked(&format!("GH={fine}"), &fine, "github-fine-grained-pat");
}

#[test]
fn gitlab_slack_stripe_tokens() {
    let gl = "glpat-Xy9_abcDEF123456ghij";
    assert_masked(&format!("CI token {gl} expired"), gl, "gitlab-token");
    let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    assert_masked(
        &format!("slack: posting with {slack}"),
        slack,
        "slack-token",
    );
    let hook = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXXab";
    let hook_secret = format!("{hook}cdefghijklmnopq");
    assert_masked(
        &format!("url=https://hooks.slack.com/services/{hook_secret}"),
        &hook_secret,
        "slack-webhook-url",
    );
    let stripe = format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc");
    assert_masked(
        &format!("Stripe.api_key = \"{stripe}\""),
        &stripe,
        "stripe-key",
    );
}

#[test]
fn private_key_pem_block_whole_and_truncated() {
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n";
    let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
    let out = assert_masked(
        &format!("tls.key: |\n{pem}\nafter"),
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw",
        "private-key",
    );
    assert!(out.ends_with("\nafter"), "{out}");
    // a block cut off (a log line truncated), newlines escaped as in JSON text
    let cut = format!(
        "key=\"-----BEGIN PRIVATE KEY-----\\n{}\\nMzEfYyjiWA4R4",
        &body[..64]
    );
    assert_masked(&cut, "MIIEvQIBADANBgkq", "private-key");
    // a public key or certificate is not a secret
    assert_clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
}

#[test]
fn jwt_service_account_token() {
    let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkRlZmF1bHQifQ.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2lnbmF0dXJlLXBhcnQtaGVyZQ";
    assert_masked(&format!("Authorization: Bearer {jwt}"), jwt, "jwt");
}

#[test]
fn password_in_url_keeps_user_and_host() {
    let out = assert_masked(
        "connecting to postgres://app:Sup3r-S3cret!@db.prod.svc:5432/app",
        "Sup3r-S3cret!",
        "url-password",
    );
    assert_eq!(
        out,
        format!("connecting to postgres://app:{PLACEHOLDER}@db.prod.svc:5432/app")
    );
    assert_clean("see https://kubernetes.io/docs/concepts/ for details");
}

#[test]
fn generic_assignments_with_entropy_check() {
    assert_masked(
        "DB_PASSWORD=hX9#kq2!Lm7zP",
        "hX9#kq2!Lm7zP",
        "generic-assignment",
    );
    assert_masked(
        "{\"api_key\": \"q8Zr2LmT5vXy9WbN\"}",
        "q8Zr2LmT5vXy9WbN",
        "generic-assignment",
    );
    assert_masked(
        "auth_token: Zm9vYmFyYmF6cXV4MTIz",
        "Zm9vYmFyYmF6cXV4MTIz",
        "generic-assignment",
    );
    // low-entropy or short values are not credentials
    assert_clean("password=changeme");
    assert_clean("token: none");
    assert_clean("secretRef: aaaaaaaaaaaa");
    assert_clean("level=info msg=\"pod started\" pod=web-1 namespace=default");
}

#[test]
fn several_findings_in_one_text_are_all_masked() {
    let m = masker();
    let text = "a=AKIAIOSFODNN7EXAMPL3 b=ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 c=ok";
    let mut s = MaskSummary::new();
    let out = m.mask(text, &mut s);
    assert_eq!(out, format!("a={PLACEHOLDER} b={PLACEHOLDER} c=ok"));
    assert_eq!(s.count("text.aws-access-key-id"), 1);
    assert_eq!(s.count("text.github-token"), 1);
}

#[test]
fn clean_text_is_borrowed_not_copied() {
    let m = masker();
    let mut s = MaskSummary::new();
    assert!(matches!(
        m.mask("I1202 10:00:00 controller.go:42] synced 12 pods", &mut s),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn custom_regex_with_and_without_secret_group() {
    let config = MaskConfig {
        detectors: vec![
            CustomDetector {
                name: "acme".into(),
                regex: r"acme_[a-z0-9]{12}".into(),
            },
            CustomDetector {
                name: "pin".into(),
                regex: r"PIN (?P<secret>\d{4})\b".into(),
            },
        ],
        ..MaskConfig::default()
    };
    let m = TextMasker::new(&config).unwrap();
    let mut s = MaskSummary::new();
    let out = m.mask("use acme_abcdef123456 with PIN 1234", &mut s);
    assert_eq!(out, format!("use {PLACEHOLDER} with PIN {PLACEHOLDER}"));
    assert_eq!(s.count("text.acme"), 1);
    assert_eq!(s.count("text.pin"), 1);
}

#[test]
fn custom_regex_matching_the_placeholder_still_terminates_and_is_idempotent() {
    let config = MaskConfig {
        detectors: vec![CustomDetector {
            name: "greedy".into(),
            regex: r"MASK\S*".into(),
        }],
        ..MaskConfig::default()
    };
    let m = TextMasker::new(&config).unwrap();
    let mut s = MaskSummary::new();
    let once = m.mask("x MASKfoo y", &mut s).into_owned();
    assert!(!m.is_flagged(&once), "{once}");
    assert_eq!(m.mask(&once, &mut MaskSummary::new()), once);
}

#[test]
fn invalid_config_is_refused_with_a_clear_error() {
    let bad = MaskConfig {
        detectors: vec![CustomDetector {
            name: "x".into(),
            regex: "(".into(),
        }],
        ..MaskConfig::default()
    };
    let err = TextMasker::new(&bad).unwrap_err().to_string();
    assert!(
        err.contains("mask.detectors[0] (x): invalid regex"),
        "{err}"
    );
    let dup = MaskConfig {
        detectors: vec![
            CustomDetector {
                name: "x".into(),
                regex: "a".into(),
            },
            CustomDetector {
                name: "x".into(),
                regex: "b".into(),
            },
        ],
        ..MaskConfig::default()
    };
    assert!(
        dup.validate()
            .unwrap_err()
            .to_string()
            .contains("duplicate name")
    );
    let empty = MaskConfig {
        env_name_patterns: vec![" ".into()],
        ..MaskConfig::default()
    };
    assert!(empty.validate().is_err());
}

#[test]
fn config_parses_from_yaml_and_rejects_unknown_keys() {
    let c: MaskConfig = serde_saphyr::from_str(
        "env_name_patterns: [pass]\ndetectors:\n  - name: acme\n    regex: 'acme_[0-9]+'\n",
    )
    .unwrap();
    assert_eq!(c.env_name_patterns, vec!["pass".to_owned()]);
    assert!(c.builtin_detectors);
    assert!(serde_saphyr::from_str::<MaskConfig>("env_patterns: [x]\n").is_err());
}

#[test]
fn builtin_detectors_can_be_turned_off() {
    let m = TextMasker::new(&MaskConfig {
        builtin_detectors: false,
        ..MaskConfig::default()
    })
    .unwrap();
    assert!(!m.is_flagged("AKIAIOSFODNN7EXAMPL3"));
    assert_eq!(m.rules().count(), 0);
}

#[test]
fn non_ascii_text_stays_valid_and_secrets_next_to_it_are_masked() {
    let m = masker();
    let mut s = MaskSummary::new();
    let text = "Passwort für DB: password=Grüße-ß9xQ2!kLm ✓ und AKIAIOSFODNN7EXAMPL3é";
    let out = m.mask(text, &mut s);
    assert_eq!(
        out,
        format!("Passwort für DB: password={PLACEHOLDER} ✓ und {PLACEHOLDER}é")
    );
    assert_eq!(s.total(), 2);
}

#[test]
fn scan_reports_rule_and_byte_range_of_the_secret_part() {
    let m = masker();
    let text = "x postgres://app:pw12@db y";
    let found = m.scan(text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, "url-password");
    assert_eq!(&text[found[0].range.clone()], "pw12");
}
