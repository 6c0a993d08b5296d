//! moto placeholder
