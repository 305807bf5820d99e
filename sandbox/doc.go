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
//     /gateway2/gws/employment/v2/ and the Account API (OAuth only).
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
// Faults.HangAfterCommit: hang): filed, and the client cannot know. Fault
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
