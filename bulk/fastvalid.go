package bulk

import (
	"encoding/json"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// fastSchema checks records against the common subset of JSON Schema a flat
// entity schema uses (type, required, properties, additionalProperties,
// enum of strings/booleans/null, minimum/maximum and their exclusive forms,
// minLength/maxLength, pattern, format date and date-time) without the
// general validator's allocations. It is compiled only when the whole
// schema stays inside that subset, and it answers only when it is sure:
// Entity.Validate asks the library whenever it is not fastValid, so the
// library keeps the last word and writes every error message.
type fastSchema struct {
	props      map[string]*fastProp
	required   []string
	additional bool // additionalProperties is not false
}

// fastVerdict is what fastSchema knows about a record.
type fastVerdict int8

const (
	fastUnknown fastVerdict = iota // outside the subset: ask the library
	fastValid
	fastInvalid
)

// jsonTypes is a set of JSON types, one bit each.
type jsonTypes uint8

const (
	tNull jsonTypes = 1 << iota
	tBoolean
	tInteger
	tNumber
	tString
	tArray
	tObject
)

var typeBits = map[string]jsonTypes{"null": tNull, "boolean": tBoolean, "integer": tInteger,
	"number": tNumber, "string": tString, "array": tArray, "object": tObject}

type fastProp struct {
	types     jsonTypes // 0 for any
	enum      []any     // strings, bools, nil; nil slice for no enum
	hasEnum   bool
	bounds    []fastBound
	minLen    int // -1 for none
	maxLen    int // -1 for none
	pattern   *regexp.Regexp
	format    string // "", date or date-time
	anyString bool   // no string keyword at all
}

// fastBound is a numeric bound, rounded to the nearest float64. Rounding
// keeps order, so a float64 value other than the rounded bound compares with
// the bound as the library's big.Rat comparison of the value's shortest
// decimal form does; only a value equal to the rounded bound may differ.
type fastBound struct {
	v         float64
	exclusive bool
	upper     bool
	// exact: the bound is exactly v, so an exact value equal to v is equal
	// to the bound.
	exact bool
	// eqSafe: v is exact and an integer of at most 2^53, so a float64 equal
	// to it prints as exactly it.
	eqSafe bool
}

// annotation keywords change nothing about validity.
var annotations = map[string]bool{"$comment": true, "title": true, "description": true, "examples": true,
	"default": true, "deprecated": true, "readOnly": true, "writeOnly": true}

const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// compileFast returns the fast checker for a schema document (as
// jsonschema.UnmarshalJSON decodes it), or nil when the schema uses
// anything outside the subset.
func compileFast(doc any) *fastSchema {
	m, ok := doc.(map[string]any)
	if !ok {
		return nil
	}
	fs := &fastSchema{props: map[string]*fastProp{}, additional: true}
	for k, v := range m {
		switch {
		case annotations[k]:
		case k == "$schema":
			if s, _ := v.(string); s != draft2020 && s != draft2020+"#" {
				return nil
			}
		case k == "$id":
			if _, ok := v.(string); !ok {
				return nil
			}
		case k == "type":
			t, ok := typesOf(v)
			if !ok || t&tObject == 0 {
				return nil
			}
		case k == "required":
			list, ok := v.([]any)
			if !ok {
				return nil
			}
			for _, r := range list {
				s, ok := r.(string)
				if !ok {
					return nil
				}
				fs.required = append(fs.required, s)
			}
		case k == "additionalProperties":
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			fs.additional = b
		case k == "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			for name, p := range props {
				fp := compileFastProp(p)
				if fp == nil {
					return nil
				}
				fs.props[name] = fp
			}
		default:
			return nil
		}
	}
	return fs
}

func typesOf(v any) (jsonTypes, bool) {
	switch v := v.(type) {
	case string:
		t, ok := typeBits[v]
		return t, ok
	case []any:
		var all jsonTypes
		for _, x := range v {
			s, _ := x.(string)
			t, ok := typeBits[s]
			if !ok {
				return 0, false
			}
			all |= t
		}
		return all, len(v) > 0
	}
	return 0, false
}

func compileFastProp(doc any) *fastProp {
	if b, ok := doc.(bool); ok && b {
		return &fastProp{minLen: -1, maxLen: -1, anyString: true}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil
	}
	fp := &fastProp{minLen: -1, maxLen: -1}
	for k, v := range m {
		switch k {
		case "type":
			t, ok := typesOf(v)
			if !ok {
				return nil
			}
			fp.types = t
		case "enum":
			list, ok := v.([]any)
			if !ok {
				return nil
			}
			for _, x := range list {
				switch x.(type) {
				case string, bool, nil:
				default:
					return nil
				}
			}
			fp.enum, fp.hasEnum = list, true
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			b, ok := boundOf(v)
			if !ok {
				return nil
			}
			b.exclusive = k == "exclusiveMinimum" || k == "exclusiveMaximum"
			b.upper = k == "maximum" || k == "exclusiveMaximum"
			fp.bounds = append(fp.bounds, b)
		case "minLength", "maxLength":
			n, ok := v.(json.Number)
			if !ok {
				return nil
			}
			i, err := n.Int64()
			if err != nil || i < 0 || i > math.MaxInt32 {
				return nil
			}
			if k == "minLength" {
				fp.minLen = int(i)
			} else {
				fp.maxLen = int(i)
			}
		case "pattern":
			s, ok := v.(string)
			if !ok {
				return nil
			}
			re, err := regexp.Compile(s)
			if err != nil {
				return nil
			}
			fp.pattern = re
		case "format":
			s, _ := v.(string)
			if s != "date" && s != "date-time" {
				return nil
			}
			fp.format = s
		default:
			if !annotations[k] {
				return nil
			}
		}
	}
	fp.anyString = fp.minLen < 0 && fp.maxLen < 0 && fp.pattern == nil && fp.format == ""
	return fp
}

// boundOf reads a numeric bound that a float64 holds without overflow.
func boundOf(v any) (fastBound, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return fastBound{}, false
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return fastBound{}, false
	}
	f, exact := r.Float64()
	if math.IsInf(f, 0) {
		return fastBound{}, false
	}
	return fastBound{v: f, exact: exact, eqSafe: exact && f == math.Trunc(f) && math.Abs(f) <= 1<<53}, true
}

// check says whether r is valid, when it can tell.
func (fs *fastSchema) check(r Record) fastVerdict {
	verdict := fastValid
	for _, req := range fs.required {
		if _, ok := r[req]; !ok {
			verdict = fastInvalid
		}
	}
	for name, v := range r {
		p, ok := fs.props[name]
		if !ok {
			if !fs.additional {
				verdict = fastInvalid
			}
			continue
		}
		switch p.check(v) {
		case fastUnknown:
			return fastUnknown
		case fastInvalid:
			verdict = fastInvalid
		}
	}
	return verdict
}

func (p *fastProp) check(v any) fastVerdict {
	switch v := v.(type) {
	case nil:
		return p.typed(tNull, v)
	case bool:
		return p.typed(tBoolean, v)
	case string:
		return p.checkString(v)
	case int64:
		return p.checkInteger(v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fastUnknown
		}
		return p.number(v, false, false)
	case json.Number:
		return p.checkDecimal(string(v))
	case []any:
		return p.typed(tArray, v)
	case map[string]any:
		return p.typed(tObject, v)
	}
	return fastUnknown // the rest: the library decides
}

// checkCoerced is check of c's value, without boxing it.
func (p *fastProp) checkCoerced(c *coerced) fastVerdict {
	switch c.kind {
	case cNull:
		return p.typed(tNull, nil)
	case cString:
		return p.checkString(c.s)
	case cInteger:
		return p.checkInteger(c.n)
	case cNumber:
		return p.checkDecimal(c.s)
	case cBoolean:
		return p.typed(tBoolean, c.b)
	case cJSON:
		return p.check(c.v)
	}
	return fastUnknown
}

func (p *fastProp) checkString(v string) fastVerdict {
	if p.types != 0 && p.types&tString == 0 {
		return fastInvalid
	}
	if p.hasEnum && !inEnum(p.enum, v) {
		return fastInvalid
	}
	if p.anyString {
		return fastValid
	}
	if p.minLen >= 0 || p.maxLen >= 0 {
		n := utf8.RuneCountInString(v)
		if p.minLen >= 0 && n < p.minLen || p.maxLen >= 0 && n > p.maxLen {
			return fastInvalid
		}
	}
	if p.pattern != nil && !p.pattern.MatchString(v) {
		return fastInvalid
	}
	switch p.format {
	case "date":
		if !isDate(v) {
			return fastInvalid
		}
	case "date-time":
		if !isDateTime(v) {
			return fastUnknown
		}
	}
	return fastValid
}

func (p *fastProp) checkInteger(v int64) fastVerdict {
	if v > 1<<53 || v < -(1<<53) {
		return fastUnknown
	}
	return p.number(float64(v), true, false)
}

// checkDecimal checks a decimal cell (the text as written). Rounding to
// float64 keeps order, so only a value that rounds onto a bound is in
// doubt.
func (p *fastProp) checkDecimal(v string) fastVerdict {
	if p.types != 0 && p.types&tNumber == 0 {
		return fastUnknown // is 1.0 an integer? the library decides
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) {
		return fastUnknown
	}
	return p.number(f, false, true)
}

// typed checks a value that only type and enum constrain.
func (p *fastProp) typed(t jsonTypes, v any) fastVerdict {
	if p.types != 0 && p.types&t == 0 {
		return fastInvalid
	}
	if p.hasEnum {
		switch v.(type) {
		case nil, bool:
			for _, e := range p.enum {
				if e == v {
					return fastValid
				}
			}
			return fastInvalid
		}
		return fastInvalid // the enum holds only strings, booleans and null
	}
	return fastValid
}

// number checks a number; exactInt says v came from an int64 (and is exact),
// rounded that it is a decimal rounded to the nearest float64.
func (p *fastProp) number(v float64, exactInt, rounded bool) fastVerdict {
	if p.types != 0 {
		ok := p.types&tNumber != 0 || p.types&tInteger != 0 && (exactInt || v == math.Trunc(v))
		if !ok {
			return fastInvalid
		}
	}
	if p.hasEnum {
		return fastInvalid
	}
	for _, b := range p.bounds {
		if v == b.v && (rounded || exactInt && !b.exact || !exactInt && !b.eqSafe) {
			return fastUnknown
		}
		var bad bool
		switch {
		case b.upper && b.exclusive:
			bad = v >= b.v
		case b.upper:
			bad = v > b.v
		case b.exclusive:
			bad = v <= b.v
		default:
			bad = v < b.v
		}
		if bad {
			return fastInvalid
		}
	}
	return fastValid
}

func inEnum(enum []any, s string) bool {
	for _, e := range enum {
		if e == any(s) {
			return true
		}
	}
	return false
}

// isDateTime accepts the plain RFC 3339 form
// YYYY-MM-DD(T|t)hh:mm:ss[.frac](Z|z|±hh:mm), seconds 00-59, a subset of
// what the library's date-time format accepts (it also takes leap seconds
// and signed fields; those go to the library).
func isDateTime(s string) bool {
	if len(s) < 20 || s[10] != 'T' && s[10] != 't' {
		return false
	}
	if !isDate(s[:10]) {
		return false
	}
	t := s[11:]
	if t[2] != ':' || t[5] != ':' || !digits(t[0:2]) || !digits(t[3:5]) || !digits(t[6:8]) {
		return false
	}
	if num(t[0:2]) > 23 || num(t[3:5]) > 59 || num(t[6:8]) > 59 {
		return false
	}
	t = t[8:]
	if len(t) > 0 && t[0] == '.' {
		i := 1
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		t = t[i:]
	}
	if t == "Z" || t == "z" {
		return true
	}
	return len(t) == 6 && (t[0] == '+' || t[0] == '-') && t[3] == ':' && digits(t[1:3]) && digits(t[4:6]) &&
		num(t[1:3]) <= 23 && num(t[4:6]) <= 59
}

// isDate reports whether s is a date as time.Parse(time.DateOnly, s)
// accepts one, YYYY-MM-DD with a day the month has, without its cost.
func isDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' || !digits(s[0:4]) || !digits(s[5:7]) || !digits(s[8:10]) {
		return false
	}
	y, m, d := num(s[0:4]), num(s[5:7]), num(s[8:10])
	if m < 1 || m > 12 || d < 1 {
		return false
	}
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		return d <= 29
	}
	return d <= daysInMonth[m-1]
}

var daysInMonth = [12]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func num(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
