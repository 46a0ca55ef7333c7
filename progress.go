package commonops

// Merge returns p with every field set in newer replacing p's: a set pointer,
// a non-empty checkpoint, Permanent when true. A worker coalescing its
// reports merges each new one onto what it has not sent yet.
func (p Progress) Merge(newer Progress) Progress {
	if newer.Attempt != nil {
		p.Attempt = newer.Attempt
	}
	if newer.Progress != nil {
		p.Progress = newer.Progress
	}
	if newer.TotalItems != nil {
		p.TotalItems = newer.TotalItems
	}
	if newer.TotalItemsEstimated != nil {
		p.TotalItemsEstimated = newer.TotalItemsEstimated
	}
	if newer.EtaSeconds != nil {
		p.EtaSeconds = newer.EtaSeconds
	}
	if newer.ProcessedItems != nil {
		p.ProcessedItems = newer.ProcessedItems
	}
	if newer.SuccessItems != nil {
		p.SuccessItems = newer.SuccessItems
	}
	if newer.FailedItems != nil {
		p.FailedItems = newer.FailedItems
	}
	if newer.Message != nil {
		p.Message = newer.Message
	}
	if newer.Status != nil {
		p.Status = newer.Status
	}
	if newer.ErrorMessage != nil {
		p.ErrorMessage = newer.ErrorMessage
	}
	if newer.OutputFileName != nil {
		p.OutputFileName = newer.OutputFileName
	}
	if newer.ErrorsFileName != nil {
		p.ErrorsFileName = newer.ErrorsFileName
	}
	if newer.Permanent {
		p.Permanent = true
	}
	if len(newer.Checkpoint) > 0 {
		p.Checkpoint = newer.Checkpoint
	}
	return p
}

// Clone returns a copy of p that shares no memory with it, so a caller that
// reuses its variables cannot change a report it already handed over.
func (p Progress) Clone() Progress {
	p.Attempt = clonePtr(p.Attempt)
	p.Progress = clonePtr(p.Progress)
	p.TotalItems = clonePtr(p.TotalItems)
	p.TotalItemsEstimated = clonePtr(p.TotalItemsEstimated)
	p.EtaSeconds = clonePtr(p.EtaSeconds)
	p.ProcessedItems = clonePtr(p.ProcessedItems)
	p.SuccessItems = clonePtr(p.SuccessItems)
	p.FailedItems = clonePtr(p.FailedItems)
	p.Message = clonePtr(p.Message)
	p.Status = clonePtr(p.Status)
	p.ErrorMessage = clonePtr(p.ErrorMessage)
	p.OutputFileName = clonePtr(p.OutputFileName)
	p.ErrorsFileName = clonePtr(p.ErrorsFileName)
	p.Checkpoint = cloneRaw(p.Checkpoint)
	return p
}

func clonePtr[T any](v *T) *T {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}
