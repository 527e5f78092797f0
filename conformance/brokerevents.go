package conformance

// brokerEventCases are the BrokerEvents cases: what the broker does on its own: consumer cancels and rebalances.
var brokerEventCases = []testCase{}
