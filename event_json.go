package commonops

import (
	"encoding/json"
	"slices"
	"strconv"
)

// AppendEventData appends the JSON of a change's event data with actor
// added under "actor" (EventData), as the stores write it into task_events:
// byte for byte what encoding/json makes of that map (keys sorted, HTML
// characters escaped), and {} for no data and no actor. Every change writes
// one, and encoding/json's map encoding (reflection, sorting through an
// interface) was 3-4% of the service's CPU a create. Values of the kinds
// transitions record (strings, statuses, numbers, booleans, null) are
// written here; a map holding anything else goes through encoding/json.
// TestEventDataMatchesEncodingJSON holds the two equal.
func AppendEventData(b []byte, data map[string]any, actor string) ([]byte, error) {
	n := len(data)
	if actor != "" {
		n++
	}
	if n == 0 {
		return append(b, "{}"...), nil
	}
	keys := make([]string, 0, n)
	for k := range data {
		if actor == "" || k != "actor" {
			keys = append(keys, k)
		}
	}
	if actor != "" {
		keys = append(keys, "actor")
	}
	slices.Sort(keys)
	start := len(b)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if k == "actor" && actor != "" {
			b = appendJSONString(b, actor)
			continue
		}
		var err error
		switch v := data[k].(type) {
		case nil:
			b = append(b, "null"...)
		case string:
			b = appendJSONString(b, v)
		case Status:
			b = appendJSONString(b, string(v))
		case UploadStatus:
			b = appendJSONString(b, string(v))
		case bool:
			b = strconv.AppendBool(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case float64:
			if b, err = appendJSONFloat(b, v); err != nil {
				return nil, err
			}
		default:
			enc, err := json.Marshal(withActor(data, actor))
			if err != nil {
				return nil, err
			}
			return append(b[:start], enc...), nil
		}
	}
	return append(b, '}'), nil
}
