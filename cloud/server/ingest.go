package server

import "net/http"

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, problem(CodeUnavailable, "batch ingest is not wired yet"))
}

func (s *Server) handleSnapshots(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, problem(CodeUnavailable, "snapshots are not wired yet"))
}

func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, problem(CodeUnavailable, "rules are not wired yet"))
}
