package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
)

// liveKeys are the keys a reload applies to new calls at once (sbc.Reload
// and sbcd's reload); a change to any other key needs a restart and the
// reload is refused naming it. A key is written as its YAML path with
// list items by name as "[]": "realms[].headers" covers every realm's
// headers and everything under them. A section's owner adds its key here,
// one line, in the same change that makes Reload apply it.
var liveKeys = []string{
	"routes",                // policy.Router, rebuilt
	"routing",               // the dial plan over the running trunks
	"realms[].headers",      // header filter and rules, per realm
	"realms[].media.codecs", // mediarelay.Anchor.SetRealmPolicy
	"realms[].media.srtp",
	"log.level",
	"hep", // sbc.SBC.Reload swaps the client (not on when it was off at start)
}

// Changed is one key whose value differs between two configs, by its
// YAML path ("realms[carrier].listen").
type Changed struct {
	Key  string
	Live bool // a reload applies it; false: it needs a restart
}

// Diff lists the keys whose values differ from old to next, each marked
// live or restart-only by liveKeys, in the order of the schema. Both
// configs come from Parse (defaults applied), so an unset key and its
// default compare equal.
func Diff(old, next *Config) []Changed {
	var out []Changed
	diffValue("", reflect.ValueOf(*old), reflect.ValueOf(*next), &out)
	return out
}

// RestartNeeded is the first change in d that a reload cannot apply, as
// an error naming its key; nil when every change is live.
func RestartNeeded(d []Changed) error {
	for _, c := range d {
		if !c.Live {
			return fmt.Errorf("%w: %s: changed, and that needs a restart of sbcd", ErrInvalid, c.Key)
		}
	}
	return nil
}

// Hash is the config file's SHA-256 in hex, as sha256sum prints it: what
// /api/v1/config and the metrics report, so an operator can tell which
// file is in service.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func diffValue(path string, a, b reflect.Value, out *[]Changed) {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				addChange(path, out)
			}
			return
		}
		diffValue(path, a.Elem(), b.Elem(), out)
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			diffValue(join(path, name), a.Field(i), b.Field(i), out)
		}
	case reflect.Slice:
		if key := itemKey(a.Type().Elem()); key != "" {
			diffNamed(path, key, a, b, out)
			return
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			addChange(path, out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			addChange(path, out)
		}
	}
}

// diffNamed compares lists of named items (realms, trunks, HA peers)
// item by item, so the key names the item; an added, removed or
// reordered item counts as a change of the list itself.
func diffNamed(path, key string, a, b reflect.Value, out *[]Changed) {
	if a.Len() != b.Len() {
		addChange(path, out)
		return
	}
	for i := range a.Len() {
		if a.Index(i).FieldByName(key).String() != b.Index(i).FieldByName(key).String() {
			addChange(path, out)
			return
		}
	}
	for i := range a.Len() {
		diffValue(path+"["+a.Index(i).FieldByName(key).String()+"]", a.Index(i), b.Index(i), out)
	}
}

// itemKey is the field that names a list's items (Name, or ID for HA
// peers); "" when they have none and the list compares whole.
func itemKey(t reflect.Type) string {
	if t.Kind() != reflect.Struct {
		return ""
	}
	for _, k := range []string{"Name", "ID"} {
		if f, ok := t.FieldByName(k); ok && f.Type.Kind() == reflect.String {
			return k
		}
	}
	return ""
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if tag == "-" || tag == "" {
		return ""
	}
	return tag
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func addChange(path string, out *[]Changed) {
	*out = append(*out, Changed{Key: path, Live: isLive(path)})
}

// isLive matches a path against liveKeys with list items' names dropped
// ("realms[carrier].headers.rules" is under "realms[].headers").
func isLive(path string) bool {
	generic := dropNames(path)
	for _, k := range liveKeys {
		if generic == k || strings.HasPrefix(generic, k+".") || strings.HasPrefix(generic, k+"[") {
			return true
		}
	}
	return false
}

func dropNames(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
			b.WriteRune(r)
		case r == ']':
			skip = false
			b.WriteRune(r)
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}
