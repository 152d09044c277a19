package crlfetch

import "time"

// Clock is the fetcher's time: tests drive a fake one and wait on events,
// never on wall-clock intervals.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the clock reaches t (at once
	// when it has). Absolute times leave no gap between reading the time
	// and arming the wait.
	At(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }
