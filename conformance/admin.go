package conformance

// adminCases are the Admin cases: deleting and purging what was declared.
var adminCases = []testCase{}
