package mockupstream

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"
)

// file is a stored file (OpenAI's File object) and its content.
type file struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`

	content []byte
}

// filePurposes are the purposes an upload may give; batch_output is the
// purpose of the files a batch writes.
var filePurposes = map[string]bool{"assistants": true, "batch": true, "fine-tune": true, "vision": true, "user_data": true, "evals": true}

func (s *Server) fileRoute(method string, rest []string) func(*exchange) error {
	switch len(rest) {
	case 0:
		return routeFor(method, map[string]func(*exchange) error{http.MethodPost: s.uploadFile, http.MethodGet: s.listFiles})
	case 1:
		id := rest[0]
		return routeFor(method, map[string]func(*exchange) error{
			http.MethodGet:    func(x *exchange) error { return s.getFile(x, id) },
			http.MethodDelete: func(x *exchange) error { return s.deleteFile(x, id) },
		})
	case 2:
		if rest[1] == "content" && method == http.MethodGet {
			return func(x *exchange) error { return s.fileContent(x, rest[0]) }
		}
	}
	return nil
}

// uploadFile reads a multipart upload: the file part and purpose (and
// expires_after[seconds], anchored at creation).
func (s *Server) uploadFile(x *exchange) error {
	_, params, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return x.writeError(http.StatusBadRequest, apiError{Message: "The request must be multipart/form-data with a file and a purpose.", Type: "invalid_request_error"})
	}
	mr := multipart.NewReader(bytes.NewReader(x.body), params["boundary"])
	var f file
	var haveFile bool
	var expiresAfter int64
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return x.writeError(http.StatusBadRequest, apiError{Message: "Malformed multipart body: " + err.Error(), Type: "invalid_request_error"})
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return x.writeError(http.StatusBadRequest, apiError{Message: "Malformed multipart body: " + err.Error(), Type: "invalid_request_error"})
		}
		switch part.FormName() {
		case "file":
			f.Filename, f.content, haveFile = part.FileName(), data, true
		case "purpose":
			f.Purpose = string(data)
		case "expires_after[seconds]":
			expiresAfter, _ = strconv.ParseInt(string(data), 10, 64)
		}
	}
	switch {
	case !haveFile:
		return x.writeError(http.StatusBadRequest, *missingParam("file"))
	case f.Purpose == "":
		return x.writeError(http.StatusBadRequest, *missingParam("purpose"))
	case !filePurposes[f.Purpose]:
		return x.writeError(http.StatusBadRequest, apiError{Message: "'" + f.Purpose + "' is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] - 'purpose'",
			Type: "invalid_request_error", Param: "purpose"})
	}
	if f.Filename == "" {
		f.Filename = "upload"
	}
	return x.answer(s.putFile(f.Filename, f.Purpose, f.content, expiresAfter))
}

// putFile stores a new file (expiring expiresAfter seconds after its creation,
// 0: never) and returns it.
func (s *Server) putFile(name, purpose string, content []byte, expiresAfter int64) *file {
	f := &file{ID: newID("file-"), Object: "file", Bytes: int64(len(content)), CreatedAt: time.Now().Unix(),
		Filename: name, Purpose: purpose, Status: "processed", content: content}
	if expiresAfter > 0 {
		at := f.CreatedAt + expiresAfter
		f.ExpiresAt = &at
	}
	s.objects.mu.Lock()
	s.objects.files.put(f.ID, f)
	s.objects.mu.Unlock()
	return f
}

func (s *Server) file(id string) (*file, bool) {
	s.objects.mu.Lock()
	defer s.objects.mu.Unlock()
	return s.objects.files.get(id)
}

func noSuchFile(id string) apiError { return notFound("No such File object: " + id) }

func (s *Server) getFile(x *exchange, id string) error {
	f, ok := s.file(id)
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchFile(id))
	}
	return x.answer(f)
}

func (s *Server) fileContent(x *exchange, id string) error {
	f, ok := s.file(id)
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchFile(id))
	}
	h := x.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(f.content)))
	x.w.WriteHeader(http.StatusOK)
	if _, err := x.w.Write(f.content); err != nil {
		return errClientGone
	}
	return nil
}

func (s *Server) deleteFile(x *exchange, id string) error {
	s.objects.mu.Lock()
	ok := s.objects.files.remove(id)
	s.objects.mu.Unlock()
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchFile(id))
	}
	return x.answer(deleted{ID: id, Object: "file", Deleted: true})
}

// listFiles lists files newest first by default (limit up to 10000, OpenAI's),
// of one purpose when asked.
func (s *Server) listFiles(x *exchange) error {
	q := x.r.URL.Query()
	p, e := parseList(q, 10000, 10000, "desc")
	if e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	purpose := q.Get("purpose")
	s.objects.mu.Lock()
	items, more := s.objects.files.page(p.after, p.limit, p.desc, func(f *file) bool { return purpose == "" || f.Purpose == purpose })
	s.objects.mu.Unlock()
	return x.answer(newListPage(items, func(f *file) string { return f.ID }, more))
}
