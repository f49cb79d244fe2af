package cloud

import (
	"hash/fnv"
	"strconv"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Owner names who holds points: a member ("m:ID"), or a card that no member
// holds yet ("c:" and the card hash in hex), whose points wait for the member
// who links the card.
type Owner string

// MemberOwner returns the owner for a member.
func MemberOwner(m loyalty.MemberID) Owner { return Owner("m:" + string(m)) }

// CardOwner returns the owner for a card no member holds.
func CardOwner(c loyalty.CardHash) Owner { return Owner("c:" + c.String()) }

// IsMember reports whether o is a member rather than a held card.
func (o Owner) IsMember() bool { return len(o) > 2 && o[:2] == "m:" }

// Member returns the member ID of a member owner, "" for a card.
func (o Owner) Member() loyalty.MemberID {
	if !o.IsMember() {
		return ""
	}
	return loyalty.MemberID(o[2:])
}

// Account names. An account key is the name, "|", and the owner or store
// ("avail|m:alice", "shortfall|store-7", "issued|3", "redeemed|").
const (
	AccountAvail     = "avail"     // an owner's available points (liability)
	AccountDebt      = "debt"      // minus what an owner owes from redeems beyond the balance
	AccountIssued    = "issued"    // program: points issued by earns (sharded)
	AccountRedeemed  = "redeemed"  // program: points spent from balances (sharded)
	AccountExpired   = "expired"   // program: points lapsed ("expired|")
	AccountAdjust    = "adjust"    // program: manual and re-evaluation adjustments (sharded)
	AccountShortfall = "shortfall" // program, per store: offline redeems beyond a balance
)

// ProgramShards is how many rows each of the program accounts "issued",
// "redeemed" and "adjust" is spread over, so that batches from different
// terminals do not all queue on one hot row.
const ProgramShards = 16

// Account returns the key of an account.
func Account(name, sub string) string { return name + "|" + sub }

// OwnerAccount returns an owner's "avail" or "debt" account key.
func OwnerAccount(name string, o Owner) string { return name + "|" + string(o) }

// ProgramAccount returns the shard of a program account ("issued",
// "redeemed", "adjust") that a terminal's batches post to: one terminal
// always hits one shard, different terminals spread over all of them.
func ProgramAccount(name, terminal string) string {
	h := fnv.New32a()
	h.Write([]byte(terminal))
	return Account(name, strconv.Itoa(int(h.Sum32()%ProgramShards)))
}
