package conformance

// crashLoopCases are the CrashLoop cases: deliveries whose count exceeds MaxAttempts, and dead letters that must be shrunk to fit.
var crashLoopCases = []testCase{}
