// A real OIDC provider for the test suite (oauth2-mock-server), on a random loopback port.
// argv[2]: issuer URL to advertise ("" = the server's own URL). Prints one JSON line when
// ready. Reads JSON commands on stdin: {"cmd":"rotate"} adds a signing key (tokens then
// rotate between keys, as an IdP does during key rollover).
// POST /token (client_credentials) accepts extra form fields: `claims` (JSON merged into the
// payload) and `header` (JSON merged into the protected header), so tests can shape
// Entra- and Okta-style tokens while the provider signs them with its own keys.
import { OAuth2Server } from 'oauth2-mock-server';
import readline from 'node:readline';

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(0, '127.0.0.1');
const ownUrl = server.issuer.url;
if (process.argv[2]) server.issuer.url = process.argv[2];

server.service.on('beforeTokenSigning', (token, req) => {
  if (req.body.claims) Object.assign(token.payload, JSON.parse(req.body.claims));
  if (req.body.header) Object.assign(token.header, JSON.parse(req.body.header));
  if (req.body.drop) for (const name of req.body.drop.split(',')) delete token.payload[name];
});

const reply = (value) => process.stdout.write(JSON.stringify(value) + '\n');
reply({ ready: true, url: ownUrl, issuer: server.issuer.url });

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const command = JSON.parse(line);
  if (command.cmd === 'rotate') {
    const key = await server.issuer.keys.generate('RS256');
    reply({ kid: key.kid });
  }
});
lines.on('close', async () => {
  await server.stop();
  process.exit(0);
});
