package redisstore

// The reply cases of the stored-object and batch scripts, added to
// reply_test.go's table: every decoder rejects what its contract does not give.

func init() {
	decoders["object_put.lua"] = decodeOK
	decoders["object_owns.lua"] = func(r reply) error { _, err := decodeObjectOwns(r); return err }
	decoders["object_forget.lua"] = decodeObjectForget
	decoders["object_list.lua"] = func(r reply) error { _, err := decodeObjectList(r, 2); return err }
	decoders["batch_open.lua"] = func(r reply) error { return decodeBatchOpen(r, "batch_1", "req_1") }
	decoders["batch_queue.lua"] = decodeOK
	decoders["batch_pending.lua"] = func(r reply) error { _, err := decodeBatchPending(r); return err }
	decoders["lease.lua"] = func(r reply) error { _, err := decodeLease(r); return err }
	replyCases = append(replyCases,
		replyCase{script: "object_put.lua", valid: []any{"OK"}},
		replyCase{script: "object_owns.lua", valid: []any{"YES"}},
		replyCase{script: "object_owns.lua", valid: []any{"NO"}},
		replyCase{script: "object_forget.lua", valid: []any{"OK", "1"}, flags: []int{1}},
		replyCase{script: "object_list.lua", valid: []any{"OK", "1", "file-a", "file-b"}, flags: []int{1}},
		replyCase{script: "object_list.lua", valid: []any{"OK", "0", "file-a"}, flags: []int{1}, variadic: true},
		replyCase{script: "batch_open.lua", valid: []any{"OK"}},
		replyCase{script: "batch_open.lua", valid: []any{"EXISTS", "req_1"}},
		replyCase{script: "batch_queue.lua", valid: []any{"OK"}},
		replyCase{script: "batch_pending.lua", valid: []any{"OK", "acme batch_1", "beta batch_2"}, variadic: true},
		replyCase{script: "lease.lua", valid: []any{"OK"}},
		replyCase{script: "lease.lua", valid: []any{"TAKEN"}},
	)
	type malformed = struct {
		script string
		v      []any
	}
	malformedReplies = append(malformedReplies,
		malformed{"object_list.lua", []any{"OK", "1", "file-a"}},                     // more, on a short page
		malformed{"object_list.lua", []any{"OK", "0", "file-a", "file-b", "file-c"}}, // beyond the limit
		malformed{"object_list.lua", []any{"OK"}},
		malformed{"batch_pending.lua", []any{"OK", "acme"}},
		malformed{"batch_pending.lua", []any{"OK", "{acme} batch_1"}},
	)
}
