package proxy

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// GET /v1/models lists what this gateway prices — its models and their aliases
// — in OpenAI's shape; GET /v1/models/{id} answers one model the gateway bills
// (a priced name, an alias, a dated snapshot of a priced family, or any model
// under pricing.default), and 404 model_not_found for one it would refuse. The
// list is not intersected with the upstream's: what an app may call is what
// the gateway prices (a model the upstream lacks fails there, and is not
// charged), and the catalogue does not depend on the upstream answering.
// Every entry is owned_by "creditgate" and created when this proxy started.

// modelsOwner is the owned_by of every listed model.
const modelsOwner = "creditgate"

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

// serveModels answers GET /v1/models and GET /v1/models/{id} for a valid key.
func (p *Proxy) serveModels(w http.ResponseWriter, r *http.Request) {
	key, _, aerr := p.authenticate(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	noteCaller(w, key)
	pricing := p.opts.Settings().Pricing
	created := p.objects.started.Unix()
	model := func(id string) modelObject {
		return modelObject{ID: id, Object: "model", Created: created, OwnedBy: modelsOwner}
	}
	// A key with a model allowlist sees the models it may use (as checkModel
	// allows them), the others as OpenAI shows a model one has no access to.
	usable := func(id string) bool {
		name, _, ok := pricing.Resolve(id)
		return ok && modelRefusal(key, id, name, pricing) == nil
	}
	if id, one := strings.CutPrefix(r.URL.Path, "/v1/models/"); one {
		if !usable(id) {
			writeError(w, errModelNotFound(id))
			return
		}
		writeJSON(w, http.StatusOK, model(id))
		return
	}
	names := pricing.Models()
	for _, a := range pricing.Aliases() {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	list := modelList{Object: "list", Data: make([]modelObject, 0, len(names))}
	for _, n := range names {
		if usable(n) {
			list.Data = append(list.Data, model(n))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func errModelNotFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, code: "model_not_found",
		message: "The model `" + id + "` does not exist or you do not have access to it."}
}

// writeJSON answers v as JSON (no HTML escaping, as OpenAI's).
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeError(w, errInternal())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}
