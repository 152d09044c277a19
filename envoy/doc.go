// Package envoy translates certplane's validated model into the Envoy v3
// resources described in docs/resources.md: Listeners, RouteConfigurations,
// Clusters, ClusterLoadAssignments and Secrets.
//
// Every function here is pure: it reads the model, returns protos, and never
// logs, touches the disk or keeps state. The builders are named after the
// message they return (Listener, Cluster, DownstreamTLSContext...). Unit and
// Translate assemble them into the per-listener sets that xds publishes.
package envoy
