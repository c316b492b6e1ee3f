// Package fake provides deterministic fake generators for the executor's
// examples, tests and benchmarks.
//
// # Determinism
//
// A [Fake] decides everything about an attempt from its inputs, never
// from goroutine order or the wall clock:
//
//   - the output's data and hash are a pure function of the node ID, its
//     parameters revision and its dependencies' output hashes, so the
//     same inputs give the same output and early cutoff works;
//   - the latency and whether the attempt fails at random are a pure
//     function of (Seed, node ID, revision, attempt), drawn from a PCG
//     seeded by a hash of those values.
//
// Two runs of the same plan with the same [Options] therefore make the
// same attempts, with the same latencies and the same outcomes, whatever
// the scheduling. [Fake.Latency] exposes the latency, so that a benchmark
// can compute the exact total work of a plan.
//
// # Latency
//
// Each kind has a median latency ([Options.Latency], or [Options.Default]
// for kinds not listed). An attempt sleeps median·exp(Sigma·Z), with Z
// standard normal: a log-normal latency whose median is the kind's
// median. The sleep is a timer that honours the context, so it runs in
// virtual time under testing/synctest, and a cancelled attempt returns
// ctx.Err() at once.
//
// # Failures
//
// A node listed in [Options.Fail] fails every attempt with an error that
// wraps [ErrFailed] and [executor.Permanent], so the executor does not
// retry it. With [Options.Flaky] set, each attempt fails with that
// probability with an error wrapping [ErrFlaky], which the executor
// retries.
package fake
