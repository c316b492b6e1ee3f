package executor

import (
	"fmt"
	"strings"

	"github.com/regengraph/regen/graph"
)

// GraphOf builds the graph that run record rec was made with, for
// [Executor.Resume] or [Executor.RerunFailed]: from the first of the
// templates that, at rec.Seconds, has the fingerprint the record keeps
// (Record.Graph; see [Fingerprint]), with opts as [graph.Options.Build]
// takes them (a host that raised MaxSeconds passes it again). A record
// written before Record.Graph existed matches the first template that
// builds at its duration. A host that has one template passes it; one
// with several (a lecture, a podcast) passes them all. When none matches,
// the error wraps [ErrInvalidRequest] and says what each template gave.
func GraphOf(rec Record, opts graph.Options, templates ...graph.Template) (*graph.Graph, error) {
	if len(templates) == 0 {
		return nil, fmt.Errorf("%w: the graph of run %s: no template given: pass the templates its graph may be of", ErrInvalidRequest, quote(rec.ID))
	}
	var tried []string
	for i, t := range templates {
		g, err := opts.Build(t, rec.Seconds)
		if err != nil {
			tried = append(tried, fmt.Sprintf("template %d: %v", i, err))
			continue
		}
		fp := Fingerprint(g)
		if rec.Graph == "" || fp == rec.Graph {
			return g, nil
		}
		tried = append(tried, fmt.Sprintf("template %d: fingerprint %s", i, short(fp)))
	}
	fp := "fingerprint " + short(rec.Graph)
	if rec.Graph == "" {
		fp = "no fingerprint: an older release's record"
	}
	return nil, fmt.Errorf("%w: the graph of run %s (%d s, %s) is of none of the templates given: %s",
		ErrInvalidRequest, quote(rec.ID), rec.Seconds, fp, strings.Join(tried, "; "))
}
