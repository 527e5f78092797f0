package messaging

// withDefaults returns p with its zero fields set from DefaultRetryPolicy:
// MaxAttempts, InitialBackoff, MaxBackoff (at least InitialBackoff) and
// Multiplier. Jitter 0 means no jitter and is kept. Negative values are
// kept, for validate to reject.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(d.MaxBackoff, p.InitialBackoff)
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	return p
}
