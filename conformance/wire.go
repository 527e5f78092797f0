package conformance

// wireCases are the Wire cases: the wire mapping: CloudEvents attributes, reserved header names, foreign messages.
var wireCases = []testCase{}
