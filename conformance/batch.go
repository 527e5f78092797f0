package conformance

// batchCases are the Batch cases: batch handlers.
var batchCases = []testCase{}
