package sqlstore_test

import (
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
)

func TestLedgerSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return storetest.OpenSQLite(t, sqlstore.Options{}) })
}

func TestLedgerPostgres(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return storetest.OpenPostgres(t, sqlstore.Options{}) })
}
