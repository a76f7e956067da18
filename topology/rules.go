package topology

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// headerRule is one compiled realms[].headers.rules entry.
type headerRule struct {
	action  string
	name    string // canonical (lower case, long form)
	display string // as configured, for added headers
	value   string
	match   *regexp.Regexp
	methods map[sip.RequestMethod]bool
}

// maxRuleValue bounds what a replace may grow a header to.
const maxRuleValue = 1024

// SetRules compiles header manipulation rules into the filter. They run on
// every message built into the realm with this filter, after the header
// policy has chosen what crosses.
func (f *HeaderFilter) SetRules(rules []config.HeaderRule) error {
	f.rules = nil
	for i, r := range rules {
		hr := headerRule{action: r.Action, name: canonical(r.Header), display: r.Header, value: r.Value}
		if config.ProtectedHeaders[hr.name] {
			return fmt.Errorf("header rule %d: %s cannot be changed", i, r.Header)
		}
		if r.Match != "" {
			re, err := regexp.Compile(r.Match)
			if err != nil {
				return fmt.Errorf("header rule %d: %w", i, err)
			}
			hr.match = re
		}
		if len(r.Methods) > 0 {
			hr.methods = map[sip.RequestMethod]bool{}
			for _, m := range r.Methods {
				hr.methods[sip.RequestMethod(m)] = true
			}
		}
		f.rules = append(f.rules, hr)
	}
	return nil
}

// Editable is a request or response whose headers rules may change.
type Editable interface {
	sip.Message
	Headers() []sip.Header
	RemoveHeader(name string) bool
}

// ApplyRules runs the rules on a message about to be sent into the realm.
func (f *HeaderFilter) ApplyRules(m Editable) {
	if f == nil || len(f.rules) == 0 {
		return
	}
	var method sip.RequestMethod
	switch v := m.(type) {
	case *sip.Request:
		method = v.Method
	case *sip.Response:
		if cs := v.CSeq(); cs != nil {
			method = cs.MethodName
		}
	}
	for _, r := range f.rules {
		if r.methods != nil && !r.methods[method] {
			continue
		}
		switch r.action {
		case "add":
			m.AppendHeader(sip.NewHeader(r.display, r.value))
		case "remove", "replace":
			r.rewrite(m)
		}
	}
}

// rewrite removes or rewrites every header with the rule's name, keeping
// the order of the others (sipgo can only remove all of one name, so the
// survivors are put back in their order).
func (r headerRule) rewrite(m Editable) {
	var keep, all []sip.Header
	changed := false
	for _, h := range m.Headers() {
		if canonical(h.Name()) != r.name {
			continue
		}
		all = append(all, h)
		v := h.Value()
		switch r.action {
		case "remove":
			if r.match == nil || r.match.MatchString(v) {
				changed = true
				continue
			}
		case "replace":
			if nv := r.match.ReplaceAllString(v, r.value); nv != v && len(nv) <= maxRuleValue && !strings.ContainsAny(nv, "\r\n") {
				changed = true
				if nv == "" {
					continue
				}
				keep = append(keep, sip.NewHeader(h.Name(), nv))
				continue
			}
		}
		keep = append(keep, h)
	}
	if !changed {
		return
	}
	for _, h := range all { // RemoveHeader drops the first of that exact name
		m.RemoveHeader(h.Name())
	}
	for _, h := range keep {
		m.AppendHeader(h)
	}
}
