package bulk

import (
	"math"
	"time"
)

// How often a running import reports: at the latest progressInterval after
// the last report, and sooner when its progress moved progressStep points.
// The worker coalesces reports further (worker.ReportIntervalDefault).
const (
	progressInterval = 500 * time.Millisecond
	progressStep     = 5.0
)

// etaWeight is the weight of the newest estimate in the smoothed time
// remaining: each report moves it by that share of the difference, so one
// slow batch does not make it jump.
const etaWeight = 0.3

// meter turns how far an import has read into what a person follows: the
// percent done, the total rows expected and the seconds left. The fraction
// done is input bytes read over the file size (CSV, JSON Lines), or rows
// read over the rows an XLSX sheet's dimension declares; with neither, the
// import reports counts only.
type meter struct {
	start    time.Time
	size     int64 // input bytes; 0 when unknown
	declared int64 // rows the file declares (XLSX dimension); 0 when it does not

	eta     float64 // smoothed seconds left; < 0 until the first estimate
	lastAt  time.Time
	lastPct float64
}

func newMeter(start time.Time, size, declared int64) *meter {
	return &meter{start: start, size: size, declared: declared, eta: -1}
}

// fraction is how much of the file is read, from 0 to 1, and false when it
// cannot be told.
func (m *meter) fraction(readBytes, rows int64) (float64, bool) {
	switch {
	case m.declared > 0:
		return min(1, float64(rows)/float64(m.declared)), true
	case m.size > 0:
		return min(1, float64(readBytes)/float64(m.size)), true
	}
	return 0, false
}

// total estimates the rows in the file: the declared count, or the rows so
// far scaled by the bytes left. Never fewer than the rows already read.
func (m *meter) total(readBytes, rows int64) (int64, bool) {
	switch {
	case m.declared > 0:
		return max(m.declared, rows), true
	case m.size > 0 && readBytes > 0 && rows > 0:
		est := float64(rows) * float64(m.size) / float64(readBytes)
		return max(rows, int64(math.Round(min(est, math.MaxInt64/2)))), true
	}
	return 0, false
}

// due reports whether a report should go now: none went yet, the last is
// progressInterval old, or progress moved progressStep points since.
func (m *meter) due(now time.Time, readBytes, rows int64) bool {
	if m.lastAt.IsZero() || now.Sub(m.lastAt) >= progressInterval {
		return true
	}
	f, ok := m.fraction(readBytes, rows)
	return ok && f*100-m.lastPct >= progressStep
}

// reading is what a report says while the import runs: progress (capped at
// 99), the estimated total and the seconds left, each false when unknown.
type reading struct {
	progress float64
	total    int64
	eta      int64
	hasPct   bool
	hasTotal bool
	hasETA   bool
}

// read takes a reading at now and remembers it as the last report.
func (m *meter) read(now time.Time, readBytes, rows int64) reading {
	var rd reading
	m.lastAt = now
	rd.total, rd.hasTotal = m.total(readBytes, rows)
	f, ok := m.fraction(readBytes, rows)
	if !ok {
		return rd
	}
	rd.progress, rd.hasPct = min(99, f*100), true
	m.lastPct = f * 100
	elapsed := now.Sub(m.start).Seconds()
	if f <= 0 || elapsed <= 0 {
		return rd
	}
	left := elapsed * (1 - f) / f // at the rate since the start
	if m.eta < 0 {
		m.eta = left
	} else {
		m.eta += etaWeight * (left - m.eta)
	}
	rd.eta, rd.hasETA = int64(math.Round(m.eta)), true
	return rd
}
