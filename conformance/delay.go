package conformance

// delayCases are the Delay cases: delayed delivery.
var delayCases = []testCase{}
