package objectstore

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/commonops/commonops"
)

// Key bounds. A segment is one file or directory name on disk, so it keeps
// to the 255-byte limit of common file systems; the whole key keeps to the
// 1024-byte limit of S3.
const (
	maxKeyLen     = 1024
	maxSegmentLen = 255
)

// secretName is the file under the local store's directory that holds its
// generated HMAC key; no object key may name it.
const secretName = ".secret"

// ValidateKey returns EINVALID unless key is a clean, relative, slash
// separated path: not empty, no leading or trailing slash, no empty, "." or
// ".." segment, no backslash and no control character. Both stores apply it,
// so a key that works on one works on the other, and the local store can
// never be led outside its directory.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return commonops.Errorf(commonops.EINVALID, "object key %q %s", key, why)
	}
	switch {
	case key == "":
		return bad("is empty")
	case len(key) > maxKeyLen:
		return bad("is too long")
	case !utf8.ValidString(key):
		return bad("is not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("is absolute")
	case strings.ContainsRune(key, '\\'):
		return bad("contains a backslash")
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return bad("contains a control character")
	case path.Clean(key) != key:
		return bad("is not a clean path")
	case key == secretName:
		return bad("is reserved")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return bad("has an empty, \".\" or \"..\" segment")
		case len(seg) > maxSegmentLen:
			return bad("has a segment longer than 255 bytes")
		}
	}
	return nil
}

// validatePrefix accepts what DeletePrefix may delete: a non-empty prefix
// that, without its trailing slash, is a valid key.
func validatePrefix(prefix string) error {
	if prefix == "" || prefix == "/" {
		return commonops.Errorf(commonops.EINVALID, "refusing to delete an empty prefix (every object)")
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}

// Kinds of task file, as ParseKey names them.
const (
	KindInput  = "input"
	KindOutput = "output"
	KindErrors = "errors"
)

// InputKey is where a task's input file lives. A task has one upload URL,
// handed out once when it is created, so the key needs nothing more.
func InputKey(taskID, fileName string) string { return "tasks/" + taskID + "/input/" + fileName }

// OutputKey is where the service itself (the built-in worker, through
// Store.Create) writes a task's output file. No upload URL is ever signed
// for it.
func OutputKey(taskID, fileName string) string { return "tasks/" + taskID + "/output/" + fileName }

// AttemptOutputKey is where the upload URL of one attempt puts a task's
// output file: a URL of an earlier attempt, which an S3 store cannot
// revoke, can only overwrite its own attempt's file. The directory is a
// sibling of output/, so it never collides with an OutputKey.
func AttemptOutputKey(taskID string, attempt int, fileName string) string {
	return "tasks/" + taskID + "/output-" + strconv.Itoa(attempt) + "/" + fileName
}

// ErrorsKey is where a task's error report lives.
func ErrorsKey(taskID string) string { return "tasks/" + taskID + "/errors.csv" }

// ReportKey is where a processor keeps a report file of a task beyond its
// output and errors.csv (an import's results.csv and unprocessed rows, and
// the parts results.csv is joined from); name may hold one directory. No
// upload URL is ever signed for it.
func ReportKey(taskID, name string) string { return "tasks/" + taskID + "/files/" + name }

// TaskPrefix holds every object of a task.
func TaskPrefix(taskID string) string { return "tasks/" + taskID + "/" }

// FileKey is a task file key taken apart.
type FileKey struct {
	TaskID string
	// Kind is KindInput, KindOutput or KindErrors.
	Kind string
	// Attempt is the attempt of an AttemptOutputKey; 0 for the others.
	Attempt int
	// Name is the file name; "errors.csv" for KindErrors.
	Name string
}

// ParseKey takes apart a key built by InputKey, OutputKey,
// AttemptOutputKey or ErrorsKey; ok is false for any other key.
func ParseKey(key string) (k FileKey, ok bool) {
	rest, found := strings.CutPrefix(key, "tasks/")
	if !found {
		return FileKey{}, false
	}
	id, rest, found := strings.Cut(rest, "/")
	if !found || id == "" {
		return FileKey{}, false
	}
	if rest == "errors.csv" {
		return FileKey{TaskID: id, Kind: KindErrors, Name: rest}, true
	}
	dir, name, found := strings.Cut(rest, "/")
	if !found || name == "" || strings.Contains(name, "/") {
		return FileKey{}, false
	}
	switch {
	case dir == "input":
		return FileKey{TaskID: id, Kind: KindInput, Name: name}, true
	case dir == "output":
		return FileKey{TaskID: id, Kind: KindOutput, Name: name}, true
	}
	n, found := strings.CutPrefix(dir, "output-")
	attempt, err := strconv.Atoi(n)
	if !found || err != nil || attempt < 1 || strconv.Itoa(attempt) != n {
		return FileKey{}, false
	}
	return FileKey{TaskID: id, Kind: KindOutput, Attempt: attempt, Name: name}, true
}

// InputTaskID returns the task ID of an input key (tasks/{id}/input/{name}),
// so that an upload callback knows which task the file belongs to.
func InputTaskID(key string) (taskID string, ok bool) {
	k, ok := ParseKey(key)
	if !ok || k.Kind != KindInput {
		return "", false
	}
	return k.TaskID, true
}

// escapeKey escapes each segment of key for a URL path, keeping the slashes.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// ContentDisposition returns an attachment header value that names the file
// fileName in any language: an ASCII fallback in filename= and the exact
// UTF-8 name in filename*= (RFC 6266, RFC 8187).
func ContentDisposition(fileName string) string {
	fileName = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == '\\' {
			return -1
		}
		return r
	}, strings.ToValidUTF8(fileName, ""))
	if fileName == "" {
		return "attachment"
	}
	var ascii strings.Builder
	for _, r := range fileName {
		switch {
		case r == '"' || r == '%':
			ascii.WriteByte('_')
		case r < utf8.RuneSelf:
			ascii.WriteRune(r)
		default:
			ascii.WriteByte('_')
		}
	}
	var ext strings.Builder
	for _, b := range []byte(fileName) {
		if isAttrChar(b) {
			ext.WriteByte(b)
		} else {
			fmt.Fprintf(&ext, "%%%02X", b)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + ext.String()
}

// isAttrChar reports whether b may appear unescaped in an RFC 8187 value.
func isAttrChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", b) >= 0
}
