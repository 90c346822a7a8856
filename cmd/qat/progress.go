package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressConfig configures a progress display.
type progressConfig struct {
	// Label prefixes every line or the bar, e.g. "epoch 3/10".
	Label string
	// Total is the number of steps of the run; <= 0 means unknown (no
	// percentage, no ETA, and a spinner instead of a bar on a terminal).
	Total int
	// Every is the interval between log lines in plain (non-terminal) mode;
	// 0 means 10s. A line is also written whenever another 10% of Total
	// has been done since the last line, and at Finish.
	Every time.Duration
}

// ttyRefresh is the minimum interval between redraws of the terminal bar.
const ttyRefresh = 100 * time.Millisecond

// progress shows the progress of a training run. On a terminal it draws a
// progress bar (github.com/schollz/progressbar/v3) whose description shows
// the label, loss, accuracy and samples/s, and whose right end shows the
// elapsed time and the bar's ETA. Otherwise (a file, a pipe, a buffer) it
// writes plain log lines such as
//
//	epoch 1: step 120/1000 (12.0%) loss 0.4321 acc 87.50% 1234 samples/s elapsed 1m2s eta 7m35s
//
// once per progressConfig.Every, whenever another 10% of Total is done, and
// at Finish.
//
// Update is cheap (a clock read and a few comparisons, no allocation) when
// it does not print, so it can be called every step. A progress is not safe
// for concurrent use.
type progress struct {
	w     io.Writer
	cfg   progressConfig
	now   func() time.Time
	start time.Time

	bar *progressbar.ProgressBar // nil in plain mode

	// latest values from Update
	done                int
	loss, acc, samplesS float64
	updated             bool

	lastPrint time.Time // plain: time of the last line; tty: last redraw
	lastDone  int       // plain: done at the last line
	printed   bool      // plain: a line has been written
	dirty     bool      // plain: Update called since the last line
	finished  bool
}

// newProgress returns a progress writing to w. It uses the terminal bar if
// w is an *os.File referring to a terminal (golang.org/x/term.IsTerminal)
// and plain log lines otherwise.
func newProgress(w io.Writer, cfg progressConfig) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return newProgressMode(w, cfg, tty, time.Now)
}

// newProgressMode is newProgress with the mode and clock chosen by the caller
// (tests force the terminal mode onto a buffer and use a fake clock).
func newProgressMode(w io.Writer, cfg progressConfig, tty bool, now func() time.Time) *progress {
	if cfg.Every <= 0 {
		cfg.Every = 10 * time.Second
	}
	p := &progress{w: w, cfg: cfg, now: now}
	p.start = now()
	p.lastPrint = p.start
	if tty {
		max := int64(cfg.Total)
		if max <= 0 {
			max = -1 // spinner
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(cfg.Label),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetItsString("step"),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return p
}

// Update records that done of Total steps are complete, with the current
// loss, accuracy acc (a fraction in [0, 1], shown as a percentage; acc < 0
// means unknown and is not shown) and throughput in samples per second. It
// redraws the bar at most every 100ms, or writes a log line when one is due.
func (p *progress) Update(done int, loss, acc, samplesPerSec float64) {
	if p.finished {
		return
	}
	p.done, p.loss, p.acc, p.samplesS, p.updated, p.dirty = done, loss, acc, samplesPerSec, true, true
	now := p.now()
	if p.bar != nil {
		if now.Sub(p.lastPrint) < ttyRefresh && (p.cfg.Total <= 0 || done < p.cfg.Total) {
			return
		}
		p.lastPrint = now
		p.redraw()
		return
	}
	due := now.Sub(p.lastPrint) >= p.cfg.Every
	if !due && p.cfg.Total > 0 {
		// another 10% done since the last line (integer arithmetic)
		due = int64(done-p.lastDone)*10 >= int64(p.cfg.Total)
	}
	if due {
		p.printLine(now)
	}
}

// Finish writes the final state: in plain mode a last line (unless the
// latest Update already wrote it), on a terminal the bar in its final state
// and a newline. Later calls to Update and Finish do nothing.
func (p *progress) Finish() {
	if p.finished {
		return
	}
	if p.bar != nil {
		p.redraw()
		if p.cfg.Total > 0 && p.done >= p.cfg.Total {
			_ = p.bar.Finish()
		} else {
			_ = p.bar.Exit()
		}
		fmt.Fprintln(p.w)
	} else if p.dirty || !p.printed {
		p.printLine(p.now())
	}
	p.finished = true
}

func (p *progress) redraw() {
	p.bar.Describe(p.description())
	done := p.done
	if p.cfg.Total > 0 && done > p.cfg.Total {
		done = p.cfg.Total
	}
	_ = p.bar.Set(done)
}

// description is the bar's description: label, loss, accuracy, samples/s.
func (p *progress) description() string {
	var b strings.Builder
	b.WriteString(p.cfg.Label)
	if p.updated {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		p.writeMetrics(&b)
	}
	b.WriteString(" ")
	return b.String()
}

func (p *progress) writeMetrics(b *strings.Builder) {
	fmt.Fprintf(b, "loss %.4f", p.loss)
	if p.acc >= 0 {
		fmt.Fprintf(b, " acc %.2f%%", 100*p.acc)
	}
	if p.samplesS > 0 && !math.IsInf(p.samplesS, 0) {
		fmt.Fprintf(b, " %s samples/s", formatRate(p.samplesS))
	}
}

func (p *progress) printLine(now time.Time) {
	var b strings.Builder
	if p.cfg.Label != "" {
		b.WriteString(p.cfg.Label)
		b.WriteString(": ")
	}
	if p.cfg.Total > 0 {
		fmt.Fprintf(&b, "step %d/%d (%.1f%%)", p.done, p.cfg.Total, 100*float64(p.done)/float64(p.cfg.Total))
	} else {
		fmt.Fprintf(&b, "step %d", p.done)
	}
	if p.updated {
		b.WriteString(" ")
		p.writeMetrics(&b)
	}
	elapsed := now.Sub(p.start)
	fmt.Fprintf(&b, " elapsed %s", elapsed.Round(time.Second))
	if p.cfg.Total > 0 && p.done > 0 && p.done < p.cfg.Total {
		eta := time.Duration(float64(elapsed) * float64(p.cfg.Total-p.done) / float64(p.done))
		fmt.Fprintf(&b, " eta %s", eta.Round(time.Second))
	}
	b.WriteString("\n")
	_, _ = io.WriteString(p.w, b.String())
	p.lastPrint = now
	p.lastDone = p.done
	p.printed, p.dirty = true, false
}

// formatRate formats a rate with 3-4 significant digits, e.g. 12.3, 1234,
// 45.6k, 1.23M.
func formatRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.3gM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	default:
		return fmt.Sprintf("%.3g", r)
	}
}

// trainProgress is the train.Progress of the train and finetune
// commands: a progress display on w for each Fit call.
type trainProgress struct {
	w io.Writer
	*progress
}

// Start begins the display of a run of total steps labelled label.
func (t *trainProgress) Start(label string, total int) {
	t.progress = newProgress(t.w, progressConfig{Label: label, Total: total})
}
