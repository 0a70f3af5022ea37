// A real OpenID Connect provider for the sign-in tests: oidc-provider
// (npm) with its development login form (any login, any password) and one
// client, tapedeck, a confidential client (client_secret_basic) that must
// use PKCE. Accounts' ID tokens carry preferred_username and groups; "carol"
// is in the tapedeck-admins group.
//   node idp.mjs PORT REDIRECT_URI   -> prints {"issuer": ...} once listening
import Provider from "oidc-provider";

const [port, redirect] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: "tapedeck",
    client_secret: "tapedeck-test-secret",
    redirect_uris: [redirect],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  // The ID token carries the claims of the scopes granted (a code flow's
  // ID token has only sub otherwise).
  conformIdTokenClaims: false,
  claims: { openid: ["sub"], profile: ["preferred_username", "groups"], email: ["email"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: "sub-" + id,
          preferred_username: id,
          email: `${id}@example.org`,
          groups: id === "carol" ? ["tapedeck-admins", "staff"] : ["staff"],
        };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;

provider.listen(Number(port), "127.0.0.1", () => {
  console.log(JSON.stringify({ issuer }));
});
