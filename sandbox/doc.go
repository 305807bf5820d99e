// Package sandbox is an emulator of Inland Revenue's gateway services, for
// demos, other teams, load tests and gatewayq's own integration tests. IR's
// mock services are not reachable from CI or a laptop without onboarding;
// the sandbox is.
//
// It shares no envelope or auth code with package gatewayclient: it parses
// what arrives on its own and validates payloads with IR's XSDs (package
// schema), so a mistake in the client cannot be mirrored here and pass.
//
// # Listeners and paths
//
// New generates a PKI (a CA, a server certificate, client certificates with
// IR-shaped CNs <32 hex>.irdgws.<domain>, and an M2M JWT signing pair);
// Start opens two TLS listeners:
//
//   - cloud (IR's port 4046): TLS ≥ 1.2, ECDHE-ECDSA suites, a client
//     certificate signed by the sandbox CA required. Serves
//     /gateway/gws/returns/, /gateway/gws/employment/v2/,
//     /secure/gateway/gws/intermediation/ and the Account API.
//   - desktop (IR's 443): one-way TLS. Serves /gateway2/gws/returns/,
//     /gateway2/gws/employment/v2/, the Account API (OAuth only) and the
//     OAuth server under /gateway3/oauth/.
//
// The Account API is POST account, POST list and GET status under both
// /gateway/account/ and /secure/gateway/account/.
//
// Each listener also serves GET /sandbox/stats (Stats as JSON) and, only
// when Options.AdminToken is set and presented as "Authorization: Bearer
// <AdminToken>" (else 401; 404 without an AdminToken), the admin endpoints:
//
//   - POST /sandbox/tokens?user=U&ttl=8h answers
//     {"access_token","token_type","expires_in","user"} like IssueToken;
//   - POST /sandbox/outage?status=503&for=30s starts an outage (SetOutage;
//     without for, until DELETE /sandbox/outage);
//   - GET and POST /sandbox/faults read and replace the fault rates, a
//     Faults JSON object such as {"hang":0.01,"loseResponse":0.05};
//   - POST /sandbox/throttle?rps=20&burst=5 is SetThrottle (burst defaults
//     to the one in force);
//   - GET /sandbox/timeline[?last=30s] answers Timeline as a JSON array.
//
// Faults and outages never apply to /sandbox/ paths.
//
// # SOAP
//
// A SOAP call must be a POST with Content-Type application/soap+xml (else
// HTTP 405 / 415). The envelope must be SOAP 1.2 with one wsa:Action naming
// an operation of the endpoint's service, and a Body nested as IR's WSDL
// says ({Op} > e.g. ReturnFileRequestMsg > FileRequestWrapper > payload);
// anything else is a SOAP Fault, HTTP 500, code s:Sender (s:VersionMismatch
// for a SOAP 1.1 envelope). Then, in order, answering HTTP 200 in IR's
// response shape:
//
//   - no Authorization header: statusCode 2; a token not in the table,
//     expired, or an M2M JWT (returns, employment and intermediation take
//     OAuth only): 1;
//   - the payload fails IR's XSD: 21 "XML Request Failed Validation: [...]",
//     with the envelope's line and column numbers as in IR's sample;
//   - the user is denied the payload's identifier/accountType (Deny): 4
//     "Unauthorised Delegation";
//   - the operation's answer.
//
// # Returns
//
// File is decided by the ledger, keyed by the natural key (identifier,
// accountType, periodEndDate, majorFormType, and payDayDate for EI) read
// from the payload's header; the identifier is taken as written (an IRD
// number and an ACC account identifier are different keys):
//
//   - a GST return whose periodEndDate is not the last day of a month: 131
//     "Period end date is not valid for the account" (the sandbox's own
//     business rule, so clients can exercise a business-rule rejection);
//   - a payday (EI) payload identical to one filed under the same key within
//     the hour (same names, attributes and text, whatever the formatting):
//     160;
//   - an original (isAmended false) when any version is filed: 107;
//   - an amendment when nothing is filed: 104 (see below);
//   - otherwise accepted: statusCode 0 with a gatewayId in IR's shape
//     ("0000 002G M22W 9") and a submissionKey, both unique in the sandbox.
//     An amendment is a new version.
//
// RetrieveStatus answers from the ledger: for GST (ReturnCommon.v1) the
// latest version's status (code SUB) and submissionKey; for EI
// (ReturnCommon.v2) a returnStatus per version. IR's schemas carry no
// gatewayId in these answers, so neither does the sandbox. RetrieveReturn
// answers the latest version's standard and form fields as filed (for EI,
// preceded by its submissionKey, as in IR's sample). An EI request's
// submissionKey is not used to pick a version; without a payDayDate, every
// payday of the period matches.
//
// When nothing is filed under the key, both answer statusCode 104 "No
// return has been filed for this account and period" (StatusReturnNotFound).
// IR's samples and XSDs publish no code for this case; 104 is the sandbox's
// choice from the 100-106 "request or data" range, so a client classifies it
// as invalid, never as a success.
//
// Prepop answers IR's sample for the request's identifier where IR published
// one, else the default sample with the identifier replaced.
// RetrieveFilingObligations answers IR's GST sample for majorFormType GST
// and IR's EI sample (statusCode 106, not available) otherwise. Employment
// and Intermediation calls answer IR's success sample for the operation
// (Employment's Event, which has no sample, an eventResponse with
// statusCode 0).
//
// # REST Account API
//
// Authorised by an OAuth bearer token or, on the cloud listener, an M2M
// JWT sent bare: header kid "M2M", alg one of RS256/384/512, ES256/384/512
// matching the registered signing key, sub the signing certificate's
// SHA-256 thumbprint (upper-case hex), iss Options.M2MIssuer, iat and exp
// present, exp at most 8 h after iat and not past (30 s leeway). A missing
// credential answers 401 EV1021, a bad one 401 EV1020; delegation refused
// (Deny, with M2MUser for JWT calls) 400 EV1022 as IR's sample does; an
// invalid body 400 EV1100 naming the field. Answers are IR's samples with
// the request's identifiers; an account type with no sample (only GST, FAM
// and INC have one) answers 400 CST404.
//
// # OAuth
//
// IR's end-user "Token Auth" (an Oracle Access Manager) is emulated on the
// desktop listener, with the request and answer shapes of IR's samples
// (testdata/ir-gws/oauth). Clients are Options.OAuthClients (default: one,
// DefaultOAuthClientID, its generated secret from OAuthClients). A client
// authenticates by HTTP Basic only (id and secret form-urlencoded inside,
// RFC 6749 §2.3.1); without it the answer is 401 invalid_client, and so is
// a client_secret in the form. Request parameters may not repeat. Tokens
// and codes are opaque 256-bit random strings (IR's are JWTs, which a
// client must not read anyway).
//
//   - GET authorize: response_type=code, client_id, redirect_uri (exactly
//     one registered), scope MYIR.Services (nothing else), state, optional
//     PKCE code_challenge with code_challenge_method=S256 (plain is
//     refused: nothing says IR takes it). Until the client and redirect
//     URI are known good, errors are a 400 page; after, a 302 to the
//     redirect URI with error= and state (RFC 6749 §4.1.2.1). There is no
//     myIR login: without login_hint the answer is a page of users to log
//     in as (Options.OAuthUsers). Sandbox extensions: login_hint=<user>
//     consents at once (302 with code and state); consent=deny answers
//     access_denied. A code lives Options.AuthCodeTTL (IR's 10 minutes).
//   - POST token, grant_type=authorization_code: code, redirect_uri (as
//     authorized), code_verifier when a challenge was given (and only
//     then). A code is used up by its first presentation, whatever the
//     outcome; presented again, it kills the token set issued from it.
//     Answers IR's {"expires_in","token_type","refresh_token",
//     "access_token"}; expires_in is a string for clients with
//     ExpiresInAsString or with Options.OAuthExpiresInAsString. Desktop
//     clients get no refresh token.
//   - POST token, grant_type=refresh_token: refresh tokens are single-use
//     and rotate. A used one presented again kills its whole token set
//     (every access and refresh token descending from the authorization;
//     their next gateway call gets statusCode 1 / EV1020) and is answered
//     invalid_grant, as is every later refresh of the set. So of N
//     concurrent refreshes with one token, one succeeds and the set dies.
//     Errors of both grants use IR's words: {"error":"invalid_grant",
//     "error_description":"Invalid Grant: grant_type=refresh_token"}.
//   - POST introspect (IR's validation): grant_type=oracle-idm:/oauth/
//     grant-type/resource-access-token/jwt, oracle_token_action=validate,
//     scope=MYIR.Services, assertion=<token>, optional
//     oracle_token_attrs_retrieval=prn exp ... Answers {"successful":true,
//     "oracle_token_attrs_retrieval":{"exp":...,"prn":"<user>"}}. An
//     invalid token, or another client's, answers 400 invalid_grant
//     "Cannot validate invalid token." (IR publishes no sample of this).
//   - POST revoke (IR's revocation): the same with oracle_token_action=
//     delete. A refresh token revokes its whole set, an access token only
//     itself: {"successful":true}; an invalid token 400 invalid_grant
//     "Cannot terminate invalid token."; another action 400 invalid_request
//     "Invalid token action: <action>". Both also work on the token
//     endpoint, as they do on Oracle Access Manager.
//
// Access tokens go into the same table as IssueToken's, so they work on
// every gateway path until they expire (Options.AccessTokenTTL, 8 h) or
// their set dies. Refresh tokens live Options.RefreshTokenTTL (1 year)
// from their issue. Advance moves the sandbox's clock to expire them (and
// codes) without waiting. Stats counts calls and errors per endpoint and
// grant, presentations per refresh token (keyed by RefreshTokenKey, a
// hash), reused refresh tokens, sets issued, killed and revoked, and the
// most refreshes of one set in flight at once. The OAuth endpoints bypass
// latency, faults, outages and the throttle.
//
// # Throttle, latency, counters
//
// Every gateway call waits Latency plus up to LatencyJitter (ended early by
// Close or the client leaving). Then, before anything is decided (for SOAP
// once the body is read, so the call is counted under its operation):
//
//  1. during an outage (SetOutage) it is answered 503, or the status given,
//     with a small HTML page as a load balancer sends;
//  2. an injected fault may take it (Faults, SetFaults): a hang until the
//     client gives up or Close, a reset (the request read, then an RST with
//     no answer), or a 500/502 HTML page;
//  3. it takes a token from its caller's bucket (client certificate CN on
//     cloud, remote IP on desktop); past the rate it is answered 429 with
//     Retry-After in whole seconds. SetThrottle applies at once to every
//     caller's bucket.
//
// None of these spends a throttle token or touches the ledger. A File the
// ledger accepts may then lose its answer (Faults.LoseResponse: reset;
// Faults.HangAfterCommit: hang): filed, and the client cannot know. An
// OAuth refresh the server honours may lose its answer the same way
// (Faults.LoseRefresh): the refresh token is spent and the new tokens
// never arrive. Fault
// draws come from one source seeded by Options.FaultSeed, so calls made one
// at a time meet the same faults on every run.
//
// Stats counts calls per operation, statusCodes, HTTP statuses, throttled
// calls, outage answers, injected faults, lost responses, filings per
// natural key and duplicate attempts. Timeline keeps the last ten minutes
// in 100 ms buckets (Options.TimelineWindow, TimelineResolution): calls
// arriving, answers by class (OK, Throttled, Unavailable, Faulted, Other)
// and Files accepted, so a benchmark can read achieved rates, how long
// callers kept calling into an outage, or how fast they settled under a
// lowered throttle (TimelineBetween sums a stretch).
package sandbox
