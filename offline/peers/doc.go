// Package peers lets the terminals of one store tell each other about the
// redeems they make while the cloud is unreachable, so a card cannot spend
// the same points at till 1 and then at till 2 during an outage
// (DESIGN.md, invariant 4).
//
// Each agent runs one Peers: a member of its store's serf cluster
// (github.com/hashicorp/serf over memberlist's LAN configuration). The
// cluster is closed to other stores by MemberlistConfig.Label (the store ID)
// and by gossip encryption with the store keyring handed out at
// enrollment. SetRoster and SetKeyring apply what the cloud hands out
// later without a restart: new terminals verify, revoked ones stop, and a
// rotated keyring is installed on every till, used once all hold it and
// the retired key removed (serf's InstallKey, UseKey, RemoveKey). Members carry tags with
// their terminal ID, version, whether they reach the cloud, their backlog and
// how far the cloud has acknowledged their journal.
//
// Every redeem made offline is broadcast as a compact serf user event
// (Event: card hash, op ID, points, terminal, epoch, sequence, time) signed
// with the terminal's own Ed25519 key: the gossip key is shared by the whole
// store, so only the signature says who made the redeem. Receivers verify it
// against the store roster (terminal ID to public key) and record it once, by
// op ID, in the peer-ops table of their journal, which counts it against the
// card's offline allowance. Before approving a redeem at or above a
// threshold, CheckRedeem asks the peers with a serf query (timeout at most
// 500 ms) what they know of the card.
//
// # When a till counts as connected
//
// A till that cannot reach the cloud is connected only when it sees at
// least one live peer, the peers it heard and itself form a quorum (a
// majority of the roster's terminals, not counting those serf saw leave
// gracefully), and, when it asked, every peer serf believes alive
// answered. Otherwise it is isolated and applies IsolatedRedeemCap. A
// partial answer is isolation: the live peer that stayed silent may be cut
// off and redeeming the same card unheard. Requiring a quorum means two
// halves of a split store cannot both believe they are the store.
//
// The bound this gives (invariant 4), per card, for one outage: every
// redeem approved while connected was checked by a quorum that had heard
// every live peer, and any two quorums share a till whose journal counts
// the earlier redeems, so connected redeems together stay within the
// card's allowance A (the journal's offline policy). Every other redeem
// was approved by a till while isolated, which keeps what it knows of the
// card within IsolatedRedeemCap I. So a store of N tills lets a card
// redeem offline at most A + k*I, where k <= N is the number of tills that
// approved a redeem of it while isolated; with every till connected it is
// A. Two limits are the price of best effort: a redeem below
// QueryThreshold asks nobody and counts as connected on serf's membership
// alone, so until serf notices a partition (seconds) such redeems are held
// by the allowance rather than by I (set the threshold to 0 to ask before
// every redeem); and an announcement lost before the intersecting till
// recorded it narrows nothing (re-announcement on join and query answers
// repair that).
//
// Serf events are best effort (an in-memory buffer, no acknowledgements):
// they narrow double spending, the allowance bounds it. Peers re-announces
// its own redeems when a member (re)joins, and query answers carry signed
// events too, so a terminal that was cut off catches up when it heals.
//
// Example shows the wiring around an offline redeem: CheckRedeem, then the
// journal's AppendOfflineRedeem (its policy counts the peer redeems), then
// Broadcast; SetState from the uplink's state; AnnounceUnacked after a
// restart; FromJournal adapts offline/journal.
//
// What this package must never do: trust an event because it arrived over
// the encrypted gossip (only a roster signature counts); count an event twice
// (op IDs decide); block a checkout on the network for longer than the query
// timeout; log a card in the clear (events carry keyed card hashes only);
// keep package-level state.
package peers
