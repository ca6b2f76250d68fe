package mail

import (
	"fmt"
	"time"

	"spacesync.io/shared/apperr"
)

// Limits bound how many token emails may be queued per sender and per
// tenant within a window, so the app cannot be used to send mail in bulk
// (DESIGN section 8). The Send Token endpoint counts with
// store.CountRecentEmails(ctx, tenant, user, now.Add(-Window)) and calls
// Check before queuing.
type Limits struct {
	PerUser   int
	PerTenant int
	Window    time.Duration
}

// DefaultLimits: 20 emails per user and 200 per tenant per hour.
var DefaultLimits = Limits{PerUser: 20, PerTenant: 200, Window: time.Hour}

// Check returns rate_limited (with Retry-After) when one more email would
// go over a limit, given the counts already queued within the window.
func (l Limits) Check(perUser, perTenant int) error {
	retry := int(max(l.Window/12, time.Minute) / time.Second)
	switch {
	case perUser >= l.PerUser:
		return &apperr.Error{
			Code: apperr.RateLimited, RetryAfter: retry,
			Message: fmt.Sprintf("You have sent %d tokens by email in the last %s, the most allowed. Try again later, or download the token instead.", perUser, windowText(l.Window)),
		}
	case perTenant >= l.PerTenant:
		return &apperr.Error{
			Code: apperr.RateLimited, RetryAfter: retry,
			Message: fmt.Sprintf("This site has sent %d tokens by email in the last %s, the most allowed. Try again later, or download the token instead.", perTenant, windowText(l.Window)),
		}
	}
	return nil
}

func windowText(d time.Duration) string {
	if d == time.Hour {
		return "hour"
	}
	return d.String()
}
