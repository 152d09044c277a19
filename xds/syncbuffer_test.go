package xds

import "github.com/certplane/certplane/internal/testutil"

// syncBuffer is a log sink that tests read while the server writes.
type syncBuffer = testutil.SyncBuffer
