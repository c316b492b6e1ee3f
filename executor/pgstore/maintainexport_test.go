package pgstore

// Jitter is the wait of Maintain between two passes, for an interval.
var Jitter = jitter
