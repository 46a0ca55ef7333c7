package operations

import (
	"fmt"
	"math"
	"time"

	"github.com/commonops/commonops"
)

// IntRange is the closed interval an integer input must lie in.
type IntRange struct{ Min, Max int64 }

// String states the range as the problems of a request do: "from 1 to 10".
func (r IntRange) String() string { return fmt.Sprintf("from %d to %d", r.Min, r.Max) }

// IntRanges is the range of every integer field of a request body, by its
// JSON name (query parameters are read with their bounds in httpapi). The use cases and the root package hold every caller to
// these bounds, and each upper bound fits the column that stores the value
// (attempt is an int4), so no number reaches a store that it would refuse;
// httpapi quotes them when a number does not even fit its Go type, and the
// OpenAPI document states the same minimum and maximum (a test keeps them
// equal). fileSize over the configured file size limit is ETOOLARGE, not
// EINVALID.
var IntRanges = map[string]IntRange{
	"attempt":        {1, commonops.MaxAttempt},
	"priority":       {commonops.PriorityMin, commonops.PriorityMax},
	"maxRetries":     {0, commonops.MaxRetriesLimit},
	"fileSize":       {0, math.MaxInt64},
	"leaseSeconds":   {0, int64(LeaseMax / time.Second)},
	"totalItems":     {0, math.MaxInt64},
	"processedItems": {0, math.MaxInt64},
	"successItems":   {0, math.MaxInt64},
	"failedItems":    {0, math.MaxInt64},
	"etaSeconds":     {0, math.MaxInt64},
	"limit":          {1, FlowLimitMax},
	"timeoutSeconds": {1, commonops.MaxTimeoutSeconds},
}
