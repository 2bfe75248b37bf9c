// The single translation unit that compiles Boost.Asio and Boost.Beast
// (BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION are set for every target).
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
