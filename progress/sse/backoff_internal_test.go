package sse

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestReconnectDelay(t *testing.T) {
	const ms = time.Millisecond
	almost1 := math.Nextafter(1, 0) // the largest draw
	tests := []struct {
		base, maxBackoff time.Duration
		fails            int
		u                float64
		want             time.Duration
	}{
		// After a connection that delivered an event: [base, 1.5·base).
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 0, u: 0, want: 3 * time.Second},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 0, u: 0.5, want: 3750 * ms},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 0, u: almost1, want: 4500*ms - 1},
		{base: 0, maxBackoff: 30 * time.Second, fails: 0, u: 0, want: MinRetry},
		{base: 0, maxBackoff: 30 * time.Second, fails: 0, u: 0.5, want: 125 * ms},
		{base: ms, maxBackoff: 30 * time.Second, fails: 0, u: almost1, want: 150*ms - 1},
		// ... not capped by maxBackoff, and never past the largest Duration.
		{base: time.Minute, maxBackoff: 30 * time.Second, fails: 0, u: 0.5, want: 75 * time.Second},
		{base: 30 * time.Second, maxBackoff: 30 * time.Second, fails: 0, u: almost1, want: 45*time.Second - 1},
		{base: time.Duration(math.MaxInt64), maxBackoff: 30 * time.Second, fails: 0, u: 0, want: time.Duration(math.MaxInt64)},
		{base: time.Duration(math.MaxInt64), maxBackoff: 30 * time.Second, fails: 0, u: almost1, want: time.Duration(math.MaxInt64)},
		{base: time.Duration(math.MaxInt64 / 4 * 3), maxBackoff: 30 * time.Second, fails: 0, u: almost1, want: time.Duration(math.MaxInt64)},
		// The n-th failure in a row: [base·2^(n-1), base·2^n).
		{base: 0, maxBackoff: 30 * time.Second, fails: 1, u: 0, want: 100 * ms},
		{base: 0, maxBackoff: 30 * time.Second, fails: 1, u: 0.5, want: 150 * ms},
		{base: 0, maxBackoff: 30 * time.Second, fails: 1, u: almost1, want: 200*ms - 1},
		{base: 0, maxBackoff: 30 * time.Second, fails: 2, u: 0, want: 200 * ms},
		{base: 0, maxBackoff: 30 * time.Second, fails: 3, u: 0, want: 400 * ms},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 3, u: 0.5, want: 18 * time.Second},
		// Capped: [max/2, max).
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 4, u: 0, want: 15 * time.Second},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 4, u: almost1, want: 30*time.Second - 1},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 62, u: 0.5, want: 22500 * ms},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: 63, u: 0.5, want: 22500 * ms},
		{base: 3 * time.Second, maxBackoff: 30 * time.Second, fails: math.MaxInt, u: 0.5, want: 22500 * ms},
		{base: time.Duration(math.MaxInt64), maxBackoff: 30 * time.Second, fails: 5, u: 0.5, want: time.Duration(math.MaxInt64)},
		// A base above the cap is waited in full, never less.
		{base: time.Minute, maxBackoff: 30 * time.Second, fails: 1, u: 0, want: time.Minute},
		{base: time.Minute, maxBackoff: 30 * time.Second, fails: 9, u: almost1, want: time.Minute},
		// A cap below MinRetry does not lower the floor.
		{base: 0, maxBackoff: ms, fails: 3, u: 0, want: MinRetry},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("base %v max %v fails %d u %v", tt.base, tt.maxBackoff, tt.fails, tt.u), func(t *testing.T) {
			assert.Equal(t, tt.want, reconnectDelay(tt.base, tt.maxBackoff, tt.fails, tt.u))
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	date := now.Add(time.Hour) // the response's Date, an hour ahead of the client
	tests := []struct {
		retryAfter, date string
		want             time.Duration
	}{
		{"", "", 0},
		{"5", "", 5 * time.Second},
		{" 5 ", "", 5 * time.Second},
		{"0", "", 0},
		{"007", "", 7 * time.Second},
		{"9223372036", "", 9223372036 * time.Second},
		{"9223372037", "", time.Duration(math.MaxInt64)},
		{"99999999999999999999999", "", time.Duration(math.MaxInt64)},
		{"-5", "", 0},
		{"+5", "", 0},
		{"5s", "", 0},
		{"1.5", "", 0},
		{"5 6", "", 0},
		{"soon", "", 0},
		// An HTTP-date, in each of its three forms, less the Date.
		{date.Add(30 * time.Second).Format(http.TimeFormat), date.Format(http.TimeFormat), 30 * time.Second},
		{date.Add(30 * time.Second).Format(time.RFC850), date.Format(http.TimeFormat), 30 * time.Second},
		{date.Add(30 * time.Second).Format(time.ANSIC), date.Format(http.TimeFormat), 30 * time.Second},
		{date.Add(-30 * time.Second).Format(http.TimeFormat), date.Format(http.TimeFormat), 0},
		{date.Format(http.TimeFormat), date.Format(http.TimeFormat), 0},
		// Less the client's clock without a valid Date.
		{now.Add(20 * time.Second).Format(http.TimeFormat), "", 20 * time.Second},
		{now.Add(20 * time.Second).Format(http.TimeFormat), "yesterday", 20 * time.Second},
		{now.Add(-20 * time.Second).Format(http.TimeFormat), "", 0},
		{"Mon, 32 Jan 2030 00:00:00 GMT", "", 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q date %q", tt.retryAfter, tt.date), func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			assert.Equal(t, tt.want, retryAfter(h, now))
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"5", "", "Sun, 06 Nov 1994 08:49:37 GMT", "99999999999999999999", "-1"} {
		f.Add(s, "Sun, 06 Nov 1994 08:49:37 GMT")
	}
	f.Fuzz(func(t *testing.T, retry, date string) {
		h := http.Header{"Retry-After": {retry}, "Date": {date}}
		if d := retryAfter(h, time.Now()); d < 0 {
			t.Fatalf("retryAfter(%q, Date %q) = %v, below zero", retry, date, d)
		}
	})
}
