package testenv

// StartRedisServerWith is StartRedisServer with the port picker given.
var StartRedisServerWith = startRedisServer

// FreePort returns a loopback port that was free when picked.
var FreePort = freePort

// StartTries is how many ports StartRedisServer tries.
const StartTries = startTries

// EphemeralLow is the lowest port of the kernel's ephemeral range.
var EphemeralLow = ephemeralLow
