// Package clustercheck holds one test, TestOwnScriptsRunOnRedisCluster: it
// drives every Lua script and multi-key command of gatewayq's library
// packages (ledger, ratelimit, breaker, auth, failures, schedule, batch,
// reaper, ingest), through their public APIs, against a real three-master Redis
// Cluster (redistest.Cluster), and checks the results.
//
// The design promises that gatewayq's own scripts touch the keys of one
// hash slot only, so that they run unchanged on Redis Cluster. A single
// Redis accepts a script or an MGET over any keys; only a cluster answers
// a key layout that breaks the promise with CROSSSLOT. The packages' own
// tests run on a single Redis, so this test is where a new script, or a
// key renamed out of its hash tag, is caught.
//
// The package has no code of its own.
package clustercheck
