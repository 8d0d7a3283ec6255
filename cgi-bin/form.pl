#!/usr/bin/perl
# A form with CGI.pm: GET shows the form, POST greets the name sent.
# The name is escaped because it is user input echoed into HTML.
use strict;
use warnings;
use CGI qw(:standard);

print header(-type => 'text/html', -charset => 'utf-8');
print start_html('Portico form');
if ((request_method() // '') eq 'POST') {
    my $name = param('name') // '';
    print p('Hello, ' . escapeHTML($name));
} else {
    # Posts back to this script, urlencoded (CGI.pm defaults to multipart).
    print start_form(
            -method  => 'POST',
            -action  => url(-absolute => 1),
            -enctype => 'application/x-www-form-urlencoded'),
        label('Name:', textfield(-name => 'name')),
        submit(-value => 'Send'),
        end_form;
}
print end_html;
