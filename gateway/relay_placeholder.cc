// Placeholder until the relay sources land; replaced by them.
namespace edge::gateway {}
