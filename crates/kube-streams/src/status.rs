//! The exit status of exec/attach, written by the server on the error channel (WebSocket) or
//! stream (SPDY): from protocol v4 on a JSON `Status` (`Success`, or `Failure` with reason
//! `NonZeroExitCode` and the code as the message of an `ExitCode` cause); before v4 plain text,
//! nothing on success.

/// The v4+ `Status` for exit code `code` of `command`.
pub fn exit_status_v4(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return serde_json::json!({"metadata": {}, "status": "Success"});
    }
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The pre-v4 status text for exit code `code` (`None` on success).
pub fn exit_status_text(code: i32) -> Option<String> {
    (code != 0).then(|| format!("command terminated with non-zero exit code: exit status {code}"))
}

/// The exit code an error-channel text reports, when it reports one: `Some(0)` for a v4
/// `Success`, the `ExitCode` cause of a `NonZeroExitCode` failure, or the number in the pre-v4
/// text. `None` for other errors (the process may not have run).
pub fn exit_code(status: &str) -> Option<i32> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(status) {
        return match v["status"].as_str() {
            Some("Success") => Some(0),
            _ if v["reason"] == "NonZeroExitCode" => v["details"]["causes"]
                .as_array()?
                .iter()
                .find(|c| c["reason"] == "ExitCode")?["message"]
                .as_str()?
                .parse()
                .ok(),
            _ => None,
        };
    }
    status
        .trim()
        .strip_prefix("command terminated with non-zero exit code: exit status ")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_exit_status_shapes() {
        assert_eq!(exit_status_v4(&[], 0)["status"], "Success");
        let s = exit_status_v4(&["false".into()], 1);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            serde_json::json!({"reason": "ExitCode", "message": "1"})
        );
    }

    #[test]
    fn exit_codes_are_read_back_from_every_shape() {
        for code in [0, 1, 3, 127, 255] {
            let v4 = exit_status_v4(&["sh".into()], code).to_string();
            assert_eq!(exit_code(&v4), Some(code), "{v4}");
            if let Some(text) = exit_status_text(code) {
                assert_eq!(exit_code(&text), Some(code), "{text}");
            }
        }
        assert_eq!(
            exit_code(r#"{"status":"Failure","reason":"InternalError","message":"x"}"#),
            None
        );
        assert_eq!(exit_code("something else"), None);
    }
}
