package conformance

// handoverCases are the Handover cases: graceful and hard handover of a group's messages between members, with exact attempt counts.
var handoverCases = []testCase{}
