package outbox_test

const childEnv = "OUTBOX_TEST_CHILD"

func relayChild() int { return 0 }
