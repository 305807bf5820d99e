// Package e2e holds gatewayq's end-to-end tests: the real worker, a real
// Redis and the IR sandbox over real TLS, wired as in production. It has
// no code of its own.
package e2e
