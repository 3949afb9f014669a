//go:build !js

package wranglerdev

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// GroupProcesses lists the pids whose process group is pgid and, when comm
// is not empty, whose command name is comm.
func GroupProcesses(pgid int, comm string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.pgrp != pgid {
			continue
		}
		if comm != "" && st.comm != comm {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

type stat struct {
	comm         string
	pgrp         int
	utime, stime int64
}

func readStat(pid int) (stat, bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, false
	}
	open, close := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || close < open {
		return stat{}, false
	}
	fields := strings.Fields(string(raw[close+1:]))
	// fields[0] is state (field 3); pgrp is field 5, utime 14, stime 15.
	if len(fields) < 13 {
		return stat{}, false
	}
	pgrp, _ := strconv.Atoi(fields[2])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return stat{comm: string(raw[open+1 : close]), pgrp: pgrp, utime: utime, stime: stime}, true
}

// CPU returns the user+system CPU time the processes used so far.
func CPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		if st, ok := readStat(pid); ok {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// Memory returns the summed VmRSS and VmHWM (peak RSS) of the processes, in bytes.
func Memory(pids []int) (rss, hwm int64) {
	for _, pid := range pids {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			fields := strings.Fields(value)
			if len(fields) == 0 {
				continue
			}
			kb, _ := strconv.ParseInt(fields[0], 10, 64)
			switch name {
			case "VmRSS":
				rss += kb << 10
			case "VmHWM":
				hwm += kb << 10
			}
		}
	}
	return rss, hwm
}

// Sampler polls the summed RSS of a server's workerd processes and keeps
// the peak; VmHWM is read too, as the kernel's own peak.
type Sampler struct {
	mu       sync.Mutex
	peakRSS  int64
	peakHWM  int64
	lastRSS  int64
	samples  int
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Sample starts polling s every interval until Stop.
func Sample(s *Server, interval time.Duration) *Sampler {
	sm := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sm.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sm.take(s)
			select {
			case <-sm.stop:
				return
			case <-t.C:
			}
		}
	}()
	return sm
}

func (sm *Sampler) take(s *Server) {
	rss, hwm := Memory(s.Workerd())
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.samples++
	sm.lastRSS = rss
	if rss > sm.peakRSS {
		sm.peakRSS = rss
	}
	if hwm > sm.peakHWM {
		sm.peakHWM = hwm
	}
}

// Peak returns the highest sampled RSS, the highest VmHWM, and the last RSS, in bytes.
func (sm *Sampler) Peak() (rss, hwm, last int64) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.peakRSS, sm.peakHWM, sm.lastRSS
}

// Stop ends the polling after one last sample.
func (sm *Sampler) Stop(s *Server) {
	sm.stopOnce.Do(func() {
		close(sm.stop)
		<-sm.done
		sm.take(s)
	})
}

// Others lists "comm(pid)" of the workerd and node processes outside the
// given process groups: another Worker busy on the machine skews a benchmark.
func Others(groups ...int) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok || (st.comm != "workerd" && st.comm != "node") {
			continue
		}
		mine := false
		for _, g := range groups {
			if st.pgrp == g {
				mine = true
			}
		}
		if !mine {
			out = append(out, st.comm+"("+strconv.Itoa(pid)+")")
		}
	}
	return out
}
