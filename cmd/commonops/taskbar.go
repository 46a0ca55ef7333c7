package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// barWidth is the number of cells of a progress bar.
const barWidth = 30

// barInterval is the least time between two redraws of a byte-count bar.
const barInterval = 100 * time.Millisecond

// bar is one progress line that redraws itself in place on a terminal. On
// anything else it writes nothing: a pipe or a log file gets no control
// characters.
type bar struct {
	w     io.Writer
	on    bool
	drawn bool
}

func newBar(w io.Writer) *bar { return &bar{w: w, on: isTerminal(w)} }

// draw shows fraction (0..1; below 0 for unknown) and label.
func (b *bar) draw(fraction float64, label string) {
	if !b.on {
		return
	}
	cells := strings.Repeat("-", barWidth)
	percent := "   "
	if fraction >= 0 {
		fraction = min(fraction, 1)
		n := int(fraction * barWidth)
		cells = strings.Repeat("#", n) + strings.Repeat("-", barWidth-n)
		percent = fmt.Sprintf("%3.0f%%", fraction*100)
	}
	fmt.Fprintf(b.w, "\r\x1b[K[%s] %s %s", cells, percent, label)
	b.drawn = true
}

// clear erases the bar, so a line printed next takes its place; the next
// draw puts it back below.
func (b *bar) clear() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.drawn = false
	}
}

// done ends the line, so what follows starts on a fresh one.
func (b *bar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// meter counts the bytes read through it onto a bar.
type meter struct {
	io.Reader
	bar   *bar
	total int64
	n     int64
	last  time.Time
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.Reader.Read(p)
	m.n += int64(n)
	if now := time.Now(); err != nil || now.Sub(m.last) >= barInterval || m.n == m.total {
		m.last = now
		fraction := -1.0
		if m.total > 0 {
			fraction = float64(m.n) / float64(m.total)
		}
		label := bytesize(m.n)
		if m.total >= 0 {
			label += " / " + bytesize(m.total)
		}
		m.bar.draw(fraction, label)
	}
	return n, err
}

// bytesize writes n bytes the way people read them.
func bytesize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
