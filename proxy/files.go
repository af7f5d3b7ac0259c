package proxy

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// POST /v1/files uploads a file (multipart: the file and its purpose) for the
// caller's account. The body streams through to the upstream as it arrives,
// within limits.max_body_bytes: a larger declared size is refused at once,
// unread, and a body that grows past it is cut and answered 413. The file is
// recorded for the account from the upstream's answer (its id), before the app
// learns the id; a file the store cannot record is deleted at the upstream
// again and answered 503, so no file exists that its owner cannot reach.
// Uploads are not charged (OpenAI does not bill file storage for batches).

// undoTimeout bounds the clean-up of an object created but not recorded.
const undoTimeout = 10 * time.Second

func (p *Proxy) uploadFile(c *objectCall) {
	r := c.r
	if r.ContentLength > p.opts.MaxBodyBytes {
		c.w.Header().Set("Connection", "close")
		writeError(c.w, errTooLarge(p.opts.MaxBodyBytes))
		return
	}
	r.Body = &limitedBody{rc: http.MaxBytesReader(c.w, r.Body, p.opts.MaxBodyBytes), c: c}
	c.created = func(ctx context.Context, body []byte) error {
		id, ok := objectID(body)
		if !ok {
			p.log.Error("the upstream answered a file upload without a usable id", zap.String("account", c.key.Account))
			return errNotRecorded
		}
		if err := p.record(ctx, c.key.Account, billing.ObjectFile, id); err != nil {
			p.undo(ctx, c.key.Account, http.MethodDelete, upstreamPath(billing.ObjectFile, id))
			return errNotRecorded
		}
		return nil
	}
	p.objects.rp.ServeHTTP(c.w, r)
}

// undo asks the upstream to delete (or cancel) what it created for a request
// that is answered 503, best effort.
func (p *Proxy) undo(ctx context.Context, account, method, path string) {
	ctx, cancel := context.WithTimeout(ctx, undoTimeout)
	defer cancel()
	res, err := p.upstreamCall(ctx, method, path, nil, "")
	if err == nil {
		res.Body.Close()
		if res.StatusCode >= 200 && res.StatusCode <= 299 {
			return
		}
	}
	p.log.Error("could not undo an upstream object the store did not record: it stays at the upstream, unreachable through creditgate",
		zap.String("account", account), zap.String("method", method), zap.String("path", path), zap.Any("error", err))
}
