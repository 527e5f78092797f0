package conformance

// membershipCases are the Membership cases: several members of one group: per-key order and one handler at a time per key across members joining and leaving.
var membershipCases = []testCase{}
