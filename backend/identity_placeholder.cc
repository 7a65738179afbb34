// Placeholder until the identity sources land; replaced by them.
namespace edge::backend {}
