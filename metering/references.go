package metering

import (
	"strings"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// ReferenceKind is the kind of stored object a request body names by id.
type ReferenceKind string

// Reference kinds.
const (
	// RefResponse is Responses' previous_response_id: the upstream continues that
	// stored response, whoever created it.
	RefResponse ReferenceKind = "response"
	// RefFile is a file_id in a content part (chat's file.file_id, Responses'
	// input_file and input_image): the model reads that uploaded file.
	RefFile ReferenceKind = "file"
	// RefConversation is Responses' conversation (an id, or an object with
	// one): the upstream reads that conversation's items into the request and
	// adds the answer's to it. Conversations are made with /v1/conversations,
	// which the proxy does not serve, so none belongs to an account.
	RefConversation ReferenceKind = "conversation"
)

// Reference is one id a request body points at. The upstream resolves ids for
// whichever account sent them (it sees one organisation), so the proxy must check
// each belongs to the caller before forwarding.
type Reference struct {
	Kind ReferenceKind
	ID   string
	// Param names where the id sits, as OpenAI's "param" does:
	// "previous_response_id", "messages[0].content[1].file.file_id".
	Param string
}

// reference records the string member m as a reference of kind at param; an
// empty string or null is no reference (the upstream refuses or ignores it).
func (r *Request) reference(kind ReferenceKind, m jsonscan.Member, param string) error {
	if r.body[m.Start] == 'n' {
		return nil
	}
	id, err := stringParam(r.body, m, param, "")
	if err != nil {
		return err
	}
	if id != "" {
		r.References = append(r.References, Reference{Kind: kind, ID: strings.Clone(id), Param: param})
	}
	return nil
}

// conversationReference records Responses' conversation: a string id, or an
// object whose id member is one.
func (r *Request) conversationReference(m jsonscan.Member) error {
	switch r.body[m.Start] {
	case 'n', '"':
		return r.reference(RefConversation, m, "conversation")
	case '{':
		it := jsonscan.Members(r.body, m.Start)
		for f, ok := it.Next(); ok; f, ok = it.Next() {
			if f.Is("id") { // each one: see parseParts
				if err := r.reference(RefConversation, f, "conversation.id"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return badType("conversation", "a string or an object with an id", r.body, m.Start)
}

// fileReference records file.file_id of a chat file part (the object member f),
// each one if the key is given twice.
func (r *Request) fileReference(f jsonscan.Member, param string) error {
	if r.body[f.Start] != '{' {
		return nil
	}
	it := jsonscan.Members(r.body, f.Start)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		if m.Is("file_id") { // each one: see parseParts
			if err := r.reference(RefFile, m, param+".file_id"); err != nil {
				return err
			}
		}
	}
	return nil
}
