// Placeholder until the peer sources land; replaced by them.
namespace edge::gateway {}
