package redisstream

import (
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
)

// The default MaxBlockingReads is half the connections the client may
// hold to one server: a cluster's or a ring's pool is per node, and every
// watched run's stream may live on the same node (a cluster of one
// shard), so 16 blocked XREADs took the whole pool of a node (5 per
// GOMAXPROCS by default: 10 on 2 cores) from Publish there.
func TestMaxBlockingReadsDefault(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	addrs := []string{"127.0.0.1:1"} // never dialled
	tests := []struct {
		name   string
		client redis.UniversalClient
		want   int
	}{
		{"client", redis.NewClient(&redis.Options{Addr: addrs[0], PoolSize: 20}), 10},
		{"client, default pool", redis.NewClient(&redis.Options{Addr: addrs[0]}), 5 * procs},
		{"client, MaxActiveConns lower", redis.NewClient(&redis.Options{Addr: addrs[0], PoolSize: 20, MaxActiveConns: 4}), 2},
		{"client, pool of one", redis.NewClient(&redis.Options{Addr: addrs[0], PoolSize: 1}), 1},
		{"cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 6}), 3},
		{"cluster, default pool", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}), max(5*procs/2, 1)},
		{"cluster, MaxActiveConns lower", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 20, MaxActiveConns: 6}), 3},
		{"ring", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addrs[0]}, PoolSize: 8}), 4},
		{"ring, default pool", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addrs[0]}}), 5 * procs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer tt.client.Close()
			assert.Equal(t, tt.want, maxBlockingReads(tt.client, 0))
			assert.Equal(t, 7, maxBlockingReads(tt.client, 7), "set: as given")
		})
	}
}
