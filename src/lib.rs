//! glrunner: GitLab Runner on EKS Fargate.
