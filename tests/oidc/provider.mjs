// A real OIDC provider (oauth2-mock-server from npm) for Holdpoint's end-to-end tests.
//
//   node provider.mjs [--cert FILE --key FILE] [--alg RS256] [--kid k1]
//
// Serves discovery (/.well-known/openid-configuration) and JWKS on 127.0.0.1 and a free port,
// over HTTPS when --cert/--key are given, and prints one JSON line: {"issuer": "https://localhost:PORT"}.
// Then it reads one JSON command per line on stdin and answers each with one JSON line on stdout:
//   {"cmd":"token", "kid":"k1"?, "claims":{...}?, "header":{...}?, "expiresIn":3600?}
//       -> {"token": "..."}  signed by the provider; claims are merged into its payload (null
//          removes one), header fields into its header (alg always stays the key's own)
//   {"cmd":"generate", "alg":"RS256", "kid":"k2"}  -> {"jwk": {...public...}}  (key rotation:
//          the new key is published in the JWKS at once)
//   {"cmd":"publicPem", "kid":"k1"}               -> {"pem": "-----BEGIN PUBLIC KEY-----..."}
//   {"cmd":"stop"}                                -> {"stopped": true}, then exits
// Errors answer {"error": "..."}. The process exits when stdin closes.
import { createPublicKey } from "node:crypto";
import { createInterface } from "node:readline";
import { OAuth2Server } from "oauth2-mock-server";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const server = new OAuth2Server(arg("key"), arg("cert"));
await server.issuer.keys.generate(arg("alg", "RS256"), { kid: arg("kid", "k1") });
await server.start(0, "127.0.0.1");

const reply = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
reply({ issuer: server.issuer.url });

async function handle(cmd) {
  switch (cmd.cmd) {
    case "token": {
      const token = await server.issuer.buildToken({
        kid: cmd.kid ?? undefined,
        expiresIn: cmd.expiresIn ?? undefined,
        scopesOrTransform: (header, payload) => {
          Object.assign(header, cmd.header ?? {});
          for (const [k, v] of Object.entries(cmd.claims ?? {})) {
            if (v === null) delete payload[k];
            else payload[k] = v;
          }
        },
      });
      return { token };
    }
    case "generate": {
      const jwk = await server.issuer.keys.generate(cmd.alg ?? "RS256", { kid: cmd.kid });
      const pub = server.issuer.keys.toJSON().find((k) => k.kid === jwk.kid);
      return { jwk: pub };
    }
    case "publicPem": {
      const pub = server.issuer.keys.toJSON().find((k) => k.kid === cmd.kid);
      if (!pub) throw new Error(`no key ${cmd.kid}`);
      const pem = createPublicKey({ key: pub, format: "jwk" }).export({ type: "spki", format: "pem" });
      return { pem };
    }
    case "stop":
      await server.stop();
      return { stopped: true };
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
    reply(await handle(cmd));
  } catch (e) {
    reply({ error: String(e?.message ?? e) });
  }
  if (cmd?.cmd === "stop") process.exit(0);
}
if (server.listening) await server.stop();
process.exit(0);
