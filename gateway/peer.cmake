# peer channels: the encrypted node-to-node stream, the server that answers it, the client
target_sources(edge_gateway PRIVATE peer_channel.cc peer_protocol.cc peer_server.cc peer_client.cc)
