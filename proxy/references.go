package proxy

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// checkReferences refuses a body that points at a stored object (a
// previous_response_id, a file_id in a content part, a conversation) the
// caller's account did not create. The upstream sees one organisation for every account and would
// resolve the id for anyone who knows it; here another account's id is answered
// as an id that does not exist, before anything is held or forwarded. Without an
// object store nothing is recorded, so nothing can be checked (the stored-object
// routes are not served then either).
func (p *Proxy) checkReferences(x *exchange) *apiError {
	if p.opts.Objects == nil {
		return nil
	}
	for _, ref := range x.req.References {
		kind := billing.ObjectFile
		switch ref.Kind {
		case metering.RefResponse:
			kind = billing.ObjectResponse
		case metering.RefConversation:
			return errUnknownReference(ref) // no account has one (metering.RefConversation)
		}
		ok, err := p.opts.Objects.OwnsObject(x.in.Context(), x.key.Account, kind, ref.ID)
		if err != nil {
			return p.storeError(err, "object ownership lookup failed", zap.String("kind", string(kind)), zap.String("param", ref.Param))
		}
		if !ok {
			return errUnknownReference(ref)
		}
	}
	return nil
}

// errUnknownReference is OpenAI's answer for a reference to an id it does not
// know: 400, naming the parameter.
func errUnknownReference(ref metering.Reference) *apiError {
	if ref.Kind == metering.RefConversation {
		return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, param: ref.Param,
			message: "Conversation with id '" + ref.ID + "' not found."}
	}
	if ref.Kind == metering.RefResponse {
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: ref.Param, code: "previous_response_not_found",
			message: "Previous response with id '" + ref.ID + "' not found."}
	}
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: ref.Param, code: "invalid_file",
		message: "No such File object: " + ref.ID}
}
