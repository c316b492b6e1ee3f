package graph

import (
	"math"
	"time"
)

// Segment timing. The segment length is fixed: a lecture of N seconds has
// N/10 segments, and each segment's narration must last 10 s ± 5%.
const (
	// SegmentSeconds is the length of one segment in seconds.
	SegmentSeconds = 10
	// SegmentLength is the length of one segment.
	SegmentLength = SegmentSeconds * time.Second
	// NarrationTolerance is the allowed relative deviation of a narration's
	// measured length from SegmentLength.
	NarrationTolerance = 0.05
	// NarrationMinSeconds and NarrationMaxSeconds bound an acceptable
	// narration length, inclusive: 9.5 s and 10.5 s.
	NarrationMinSeconds = SegmentSeconds * (1 - NarrationTolerance)
	NarrationMaxSeconds = SegmentSeconds * (1 + NarrationTolerance)
)

// CheckNarration reports whether a measured narration length, in seconds,
// fits its segment: from 9.5 s to 10.5 s inclusive. Anything else,
// including NaN, infinities and negative values, is a [*NarrationError].
func CheckNarration(seconds float64) error {
	if math.IsNaN(seconds) || seconds < NarrationMinSeconds || seconds > NarrationMaxSeconds {
		return &NarrationError{Seconds: seconds}
	}
	return nil
}
